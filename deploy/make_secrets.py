"""Write the Docker secrets docker-compose.yml mounts, into deploy/secrets/ (or DIR).

    python deploy/make_secrets.py [DIR] [--host-rabbitmq NAME] [--host-mongo NAME] [--cluster]

One file per secret, each made only if it does not exist yet (run it again after adding a
service: nothing existing changes, so rotating one means deleting that file first):

    token_secret                 signs access tokens (gateway, DUET_TOKEN_SECRET_FILE)
    token_secrets_previous       older signing secrets still accepted, empty at first
                                 (gateway, DUET_TOKEN_SECRETS_PREVIOUS_FILE)
    {gateway,persister,ops}_amqp_url    each service's own RabbitMQ account, as the URL the
                                 service reads (DUET_AMQP_URL_FILE); the broker's
                                 render-definitions.sh reads the accounts from the same files
    {gateway,persister,ops}_mongo_url   each service's own MongoDB account (DUET_MONGO_URL_FILE);
                                 mongo-init creates the accounts from the same files
    mongo_root_password          MongoDB's root account, used only by mongo-init
    mongo_keyfile                the replica set's internal key (mongod --keyFile)
    rabbitmq_erlang_cookie       --cluster: the RabbitMQ nodes' shared Erlang cookie
                                 (deploy/compose.cluster.yml); the URLs then name every
                                 node (rabbitmq, rabbitmq-2, rabbitmq-3) and member

Passwords are 43 characters of A-Z a-z 0-9 _ - (secrets.token_urlsafe(32)), which need no
escaping in a URL. Docker Compose mounts these files into the containers as they are (no
owner or mode of their own without Swarm), and the services run as other users than you:
the files are made readable (0444) inside a directory only you can enter (0700).
Standard library only: runs with any Python 3.9+.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

ROLES = ("gateway", "persister", "ops")


def _password() -> str:
    return secrets.token_urlsafe(32)


CLUSTER_RABBITMQ = "rabbitmq,rabbitmq-2,rabbitmq-3"  # deploy/compose.cluster.yml's nodes
CLUSTER_MONGO = "mongo,mongo-2,mongo-3"


def plan(rabbitmq: str, mongo: str, database: str, *, cluster: bool = False) -> dict[str, str]:
    """Every secret's file name and a fresh value for it. Hosts may be comma-separated
    (a cluster): each service's AMQP URL then lists every node, its MongoDB URL every
    member."""
    values = {"token_secret": secrets.token_urlsafe(48),
              "token_secrets_previous": "",  # filled by hand when rotating (operations.md)
              "mongo_root_password": _password(),
              # mongod takes only the base64 alphabet in a key file.
              "mongo_keyfile": base64.b64encode(secrets.token_bytes(96)).decode()}
    if cluster:
        values["rabbitmq_erlang_cookie"] = secrets.token_hex(32).upper()
    nodes = [h.strip() for h in rabbitmq.split(",") if h.strip()]
    members = ",".join(f"{h.strip()}:27017" for h in mongo.split(",") if h.strip())
    for role in ROLES:
        password = _password()
        values[f"{role}_amqp_url"] = ",".join(
            f"amqp://duet-{role}:{password}@{node}:5672/" for node in nodes)
        values[f"{role}_mongo_url"] = (f"mongodb://duet-{role}:{_password()}@{members}/"
                                       f"{database}?replicaSet=rs0&authSource=admin")
    return values


def write(directory: Path, values: dict[str, str]) -> list[str]:
    """Create the missing files; return their names."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    made = []
    for name, value in values.items():
        path = directory / name
        if path.exists():
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        path.chmod(0o444)
        made.append(name)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", type=Path,
                        default=Path(__file__).resolve().parent / "secrets")
    parser.add_argument("--host-rabbitmq", default="rabbitmq")
    parser.add_argument("--host-mongo", default="mongo")
    parser.add_argument("--database", default="duet", help="DUET_PREFIX + DUET_MONGO_DB")
    parser.add_argument("--cluster", action="store_true",
                        help="for deploy/compose.cluster.yml: every node and member in the "
                             "URLs, and the RabbitMQ nodes' Erlang cookie")
    args = parser.parse_args(argv)
    rabbitmq, mongo = args.host_rabbitmq, args.host_mongo
    if args.cluster:
        rabbitmq = CLUSTER_RABBITMQ if rabbitmq == "rabbitmq" else rabbitmq
        mongo = CLUSTER_MONGO if mongo == "mongo" else mongo
    made = write(args.dir, plan(rabbitmq, mongo, args.database, cluster=args.cluster))
    for name in made:
        print(f"made {args.dir / name}")
    if not made:
        print(f"every secret already exists in {args.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
