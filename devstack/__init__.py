"""Run duet's real parts locally, without Docker: RabbitMQ, mongod, and the services.

Used by `python -m devstack` (the `duet-stack` script, `make run`), by the test suite's
fixtures and by the bench, so all three start MongoDB, probe RabbitMQ and launch the
services the same way (launch.py: start a child, wait until it answers, stop it by PID).
"""
