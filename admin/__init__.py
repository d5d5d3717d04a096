"""Operator tools for duet: the `duet-admin` command (cli.py) and the audit of the broker's
stream against MongoDB (audit.py). Users' commands are `duet` (client/); this package is
the one that talks to RabbitMQ and MongoDB directly."""
