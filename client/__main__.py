"""`python -m client`: the `duet` command line."""

from .cli import main

raise SystemExit(main())
