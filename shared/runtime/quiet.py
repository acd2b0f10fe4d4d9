"""Keep libraries' notices about their own futures out of what operators read.

eventlet announces its deprecation on import, setuptools that of `pkg_resources` (which the
`nameko` command imports), and both through categories `-W`/PYTHONWARNINGS cannot all name.
"""

from __future__ import annotations

import warnings


def quiet() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
