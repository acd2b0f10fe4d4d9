"""Group commit: appends that arrive while a durable commit is in flight share the next one.

An fsync (SQLite) or WAL flush (PostgreSQL) costs the same for one event or fifty, and it is
most of an append's time. So the first caller to find no commit running leads one at once (no
timer: a lone caller waits for nothing); callers who arrive meanwhile queue, and the next
leader takes the whole queue into one transaction. Each caller is answered only when the
commit that holds its events is durable. Works with threads and with eventlet's green threads
(its monkey patch makes `threading.Condition` green).

Under eventlet a commit holds the hub: sqlite3 is a C call, so no other green thread runs
while the leader commits, and none could queue behind it (nothing ever grouped). So a
leader first yields once, with no timer: the green threads that are ready to run (requests
already received and decided, about to append) run up to their own append and queue, and
the leader takes them all. A lone caller loses one turn of the hub, a few microseconds.
(Running the commit in a native thread through `eventlet.tpool` let appends queue during
the fsync as well, but each hand-over between threads cost a lone append 200 us, and it
grouped fewer: 1.4x the single-commit floor with 8 green appenders, against 2.6x.)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.eventlog.model import NewEvent


@dataclass(eq=False, slots=True)
class Pending:
    """One append, ready (sealed, or sealed by the commit once it knows the keys), waiting
    for the commit that will hold it."""

    stream: str
    events: Sequence[NewEvent]
    ids: list[str]
    keys: dict[str, bytes]
    new_keys: dict[str, bytes]
    sealed: list[tuple[dict[str, Any], list[str] | None]]  # empty: to be sealed in the commit
    expected_version: int | None
    meta: tuple[str | None, str | None, str, str | None]
    positions: list[int] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # as inserted (none if not fresh)
    fresh: bool = False
    first: tuple[int, str] = (0, "")
    stored_apart: bool = False
    written: bool = False  # rows of it were queued or sent in the open transaction
    error: BaseException | None = None
    answered: bool = False
    woken: threading.Event | None = None  # made for a caller that waits (a leader never does)


class GroupCommit:
    """Hands each queue of appends to one leader, and answers each caller after its commit.

    Each waiting caller sleeps on an event of its own, woken once: when its commit is done,
    or to lead the next one. (A shared condition woke every waiter at every commit, and each
    waking thread competes for the GIL with the leader's work.)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Pending] = []
        self._leading = False
        self._yield = _green_yield()

    def submit(self, pending: Pending, commit: Callable[[list[Pending]], None]) -> list[int]:
        """Queue `pending`; lead the next commit if none is running; return its positions.

        `commit(batch)` writes and commits the batch, setting `error` on each append that
        failed alone, or raising when the commit itself failed (every append then fails).
        """
        with self._lock:
            self._queue.append(pending)
            if self._leading:
                pending.woken = threading.Event()
            self._leading = True
        if pending.woken is not None:
            pending.woken.wait()  # answered, or handed the lead
        if not pending.answered:
            self._lead(pending, commit)
        if pending.error is not None:
            raise pending.error
        return pending.positions

    def _lead(self, pending: Pending, commit: Callable[[list[Pending]], None]) -> None:
        if self._yield is not None:
            try:
                self._yield()  # the green threads ready to append join this commit
            except BaseException:  # killed while it let them run: the next one leads
                self._abdicate(pending)
                raise
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            commit(batch)
        except BaseException as exc:  # noqa: BLE001 - every caller gets its own answer
            for each in batch:
                each.error = each.error or _for(each is pending, exc)
            if not isinstance(exc, Exception):
                raise  # the leader was interrupted (a kill, an exit): let that go on
        finally:
            with self._lock:
                for each in batch:
                    each.answered = True
                following = self._queue[0] if self._queue else None
                self._leading = following is not None
            for each in batch:
                if each.woken is not None:
                    each.woken.set()
            if following is not None and following.woken is not None:
                following.woken.set()  # it leads the next commit

    def _abdicate(self, pending: Pending) -> None:
        """A leader interrupted before it took the queue leaves it (unanswered: its caller
        has the interruption), and the first of the others leads."""
        with self._lock:
            self._queue.remove(pending)
            following = self._queue[0] if self._queue else None
            self._leading = following is not None
        if following is not None and following.woken is not None:
            following.woken.set()


def _green_yield() -> Callable[[], None] | None:
    """Under eventlet's monkey patch, a way to let every runnable green thread run once
    (`eventlet.sleep(0)`); else None: OS threads run on their own, and a yield would only
    cost a lone caller a system call (measured: single appends fell from 0.87x to 0.54x of
    the floor)."""
    if "eventlet" not in sys.modules:
        return None
    import eventlet
    from eventlet import patcher

    if not patcher.is_monkey_patched("thread"):
        return None
    return lambda: eventlet.sleep(0)


class CommitInterrupted(RuntimeError):
    """The commit holding this append was interrupted: it may or may not be in the log (a
    retry with the same command id tells)."""


def _for(own: bool, exc: BaseException) -> BaseException:
    """The error a caller gets when its group's commit failed: the leader's own, or for the
    others an ordinary exception (never the leader's interruption, a KeyboardInterrupt or a
    GreenletExit that was aimed at the leader)."""
    if own or isinstance(exc, Exception):
        return exc
    return CommitInterrupted(f"the group commit was interrupted ({type(exc).__name__})")
