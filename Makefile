# The commands the README names: `make run` (the stack on this machine) and `make test`.
PYTHON ?= python
ARGS ?=

.PHONY: install run test lint schemas

install:  ## install duet and its dev tools into the current environment
	$(PYTHON) -m pip install -e '.[dev]'

run:  ## start RabbitMQ/mongod if needed, a persister and a gateway; e.g. make run ARGS="--gateways 2"
	$(PYTHON) -m devstack $(ARGS)

test:  ## the whole test suite (real RabbitMQ and mongod)
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

schemas:  ## regenerate contracts/schema/*.json
	$(PYTHON) -m contracts export contracts/schema
