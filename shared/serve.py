"""`python -m shared.serve run --config ... services.X.service`: `nameko run`, minus the
libraries' deprecation notices in the service logs (see shared.quiet)."""

from __future__ import annotations

import sys

from shared.quiet import quiet

if __name__ == "__main__":
    quiet()
    from nameko.cli.main import main

    sys.exit(main())
