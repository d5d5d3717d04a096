"""`python -m contracts export DIR` writes every contract's JSON Schema."""

from __future__ import annotations

import argparse
from pathlib import Path

from .schemas import SCHEMA_DIR, export


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m contracts")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write JSON Schemas")
    ex.add_argument("directory", nargs="?", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args()
    for path in export(args.directory):
        print(path)


if __name__ == "__main__":
    main()
