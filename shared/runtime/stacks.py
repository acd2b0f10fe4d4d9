"""`kill -USR1 <service pid>` writes every green thread's stack to the service's log: what an
operator needs when a service is up but does not answer (a call waiting on a dead socket, a
lock never released), without stopping it or attaching a debugger."""

from __future__ import annotations

import gc
import logging
import signal
import traceback
from typing import Any

logger = logging.getLogger(__name__)


def _stacks() -> list[str]:
    """The stack of every live greenlet that is not running (the running one is this)."""
    import greenlet

    out = []
    frozen = gc.get_freeze_count()
    if frozen:  # a catch-up froze the heap (gc.freeze): frozen objects are not listed
        gc.unfreeze()
    objects = gc.get_objects()
    if frozen:
        gc.freeze()
    for obj in objects:
        try:  # the heap holds weak proxies whose referent is gone: they raise when asked
            frame = obj.gr_frame if isinstance(obj, greenlet.greenlet) else None
        except ReferenceError:
            continue
        if frame is not None:
            out.append("".join(traceback.format_stack(frame)))
    return out


def dump(*_: Any) -> None:
    """The signal handler: never raises (an exception here would end the service)."""
    try:
        stacks = _stacks()
        logger.warning("%d green threads on SIGUSR1:\n%s", len(stacks),
                       "\n---\n".join(stacks))
    except Exception:
        logger.exception("could not list the green threads")


def install() -> None:
    signal.signal(signal.SIGUSR1, dump)
