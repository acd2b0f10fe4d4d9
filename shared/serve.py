"""`python -m shared.serve run --config ... services.X.service`: `nameko run`, minus the
libraries' deprecation notices in the service logs (see shared.quiet), under a umask of 077
(see shared.private)."""

from __future__ import annotations

import sys

from shared.private import private_umask
from shared.quiet import quiet

if __name__ == "__main__":
    private_umask()  # the service's databases and files are this user's only
    quiet()
    from nameko.cli.main import main

    sys.exit(main())
