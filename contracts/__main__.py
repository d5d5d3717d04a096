"""`python -m contracts export [DIR]`: every contract's JSON Schema into DIR (default
contracts/schema/), the AsyncAPI document (contracts/asyncapi.json) and the web client's
table of codes (web/codes.js)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .asyncapi import ASYNCAPI_PATH, render_asyncapi
from .codes import as_js
from .schemas import SCHEMA_DIR, export

WEB_CODES = Path(__file__).resolve().parent.parent / "web" / "codes.js"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m contracts")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write JSON Schemas, the AsyncAPI document, codes.js")
    ex.add_argument("directory", nargs="?", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args()
    for path in export(args.directory):
        print(path)
    ASYNCAPI_PATH.write_text(render_asyncapi())
    print(ASYNCAPI_PATH)
    if WEB_CODES.parent.is_dir():
        WEB_CODES.write_text(as_js())
        print(WEB_CODES)


if __name__ == "__main__":
    main()
