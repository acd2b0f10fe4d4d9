"""What a pure fold or decision reads of a committed event: one Protocol every domain shares
(shared.eventlog.Record satisfies it; tests pass small fakes), extended where a fold needs more."""

from __future__ import annotations

from typing import Any, Protocol


class HistoryRecord(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def version(self) -> int: ...
