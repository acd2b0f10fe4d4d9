"""`python -m shared.runtime.serve run --config ... services.X.service`: `nameko run`, minus the
libraries' deprecation notices in the service logs (see shared.runtime.quiet), under a umask of 077
(see shared.runtime.private)."""

from __future__ import annotations

import sys

from shared.runtime.private import private_umask
from shared.runtime.quiet import quiet

if __name__ == "__main__":
    private_umask()  # the service's databases and files are this user's only
    quiet()
    from nameko.cli.main import main

    sys.exit(main())
