"""What the platform writes under var/ is readable by its own user only.

Databases (the log, and the residents' keys apart from it), their SQLite -wal/-shm files,
service logs, tokens and keys all live under var/. Every process the project starts sets a
umask of 077 first (`grassroots` and the service runner `shared.runtime.serve`), so new files
are 0600 and new folders 0700; `tighten` takes group and other bits off what an earlier
version made.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

UMASK = 0o077


def private_umask() -> int:
    """Make every file this process (and its children) creates private; the previous umask."""
    return os.umask(UMASK)


def tighten(root: Path) -> list[Path]:
    """Take group and other permissions off `root` and everything under it (symbolic links
    are left alone, and never followed); the paths whose mode changed."""
    changed: list[Path] = []
    if not root.is_dir() or root.is_symlink():
        return changed
    for path in [root, *root.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:  # gone meanwhile (a running broker's temp file)
            continue
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            continue
        try:
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
        except (FileNotFoundError, PermissionError):
            continue
        changed.append(path)
    return changed
