"""`python -m admin`: the `duet-admin` command line."""

from .cli import main

raise SystemExit(main())
