# The commands the README names: `make run` (the stack on this machine) and `make test`.
# Both install what they need first (scripts/bootstrap.sh), so they work on a fresh clone.
PYTHON ?= python3
ARGS ?=

.PHONY: screenshots lock deps install run run-cluster test lint schemas vectors bench bench-quick bench-profile reliability

deps:  ## Debian and Python packages, only what is missing
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh

lock:  ## pin every dependency with its hashes: requirements/{runtime,dev}.lock (Linux, CPython 3.11)
	$(PYTHON) -m pip install -q pip-tools
	$(PYTHON) -m piptools compile -q --strip-extras --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements/runtime.lock pyproject.toml
	$(PYTHON) -m piptools compile -q --strip-extras --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links --extra dev -o requirements/dev.lock pyproject.toml

install:  ## install duet and its dev tools into the current environment
	$(PYTHON) -m pip install --require-hashes -r requirements/dev.lock && $(PYTHON) -m pip install --no-deps -e .

run:  ## start RabbitMQ/mongod if needed, a persister and a gateway; make run ARGS="--gateways 2"
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh --with-rabbitmq
	$(PYTHON) -m devstack $(ARGS)

run-cluster:  ## as run, on a local cluster: 3 RabbitMQ nodes, a 3-member replica set, 2 gateways, 2 persisters
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh --with-rabbitmq
	$(PYTHON) -m devstack --cluster --gateways 2 --persisters 2 $(ARGS)

test: deps  ## the whole test suite (real RabbitMQ and mongod)
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

schemas:  ## regenerate contracts/schema/*.json
	$(PYTHON) -m contracts export contracts/schema

vectors:  ## regenerate contracts/vectors/envelope-v2.json (new random keys; v1 stays as it is)
	$(PYTHON) -m client.vectors

bench-quick: deps  ## every benchmark scenario at small sizes (< 3 min): bench/results/latest.{json,md}
	$(PYTHON) -m bench --quick $(ARGS)

bench: deps  ## the full benchmark
	$(PYTHON) -m bench $(ARGS)

bench-profile: deps  ## where gateway-0 spends its CPU (py-spy); ARGS=persister: the persister's drain
	$(PYTHON) -m pip install -q py-spy && $(PYTHON) -m bench --profile $(ARGS)

reliability:  ## copy the last test run's reliability report into docs/
	cp artifacts/reliability.md docs/reliability.md

screenshots:  ## copy the last browser test run's screenshots into docs/screenshots
	cp artifacts/screenshots/desktop.png artifacts/screenshots/phone-list.png \
	   artifacts/screenshots/phone-chat.png artifacts/screenshots/conversation.png docs/screenshots/
