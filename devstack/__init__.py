"""Run duet's real parts locally, without Docker: RabbitMQ, mongod, and the services.

Used by `python -m devstack` (the `duet-stack` script, `make run`) and by the test
suite's fixtures, so both start MongoDB and probe RabbitMQ the same way.
"""
