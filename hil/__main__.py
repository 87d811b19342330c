"""``python -m hil``: the framework's command line."""

from hil.cli import main

raise SystemExit(main())
