"""What must hold after each fault of `grassroots chaos`, checked against the logs and views
themselves, over the catalogue: no acknowledged write lost, no write applied twice, and every
live view equal, table by table, to the same view folded afresh from the logs.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, select

from shared.kernel.projection import Projector, projection_checkpoints
from shared.runtime import catalogue
from shared.runtime.providers import RemoteLogs
from shared.runtime.rpc import cluster
from shared.tools.chaos_load import Outcome


class Logs:
    """Every write service's log, read over its `read_log` RPC from where the last look
    stopped (records are immutable, so what was read stays true)."""

    def __init__(self, uri: str, marker: str) -> None:
        self.uri = uri
        self.marker = re.compile(marker)
        self.subjects: dict[str, dict[int, str]] = {n: {} for n in catalogue.names("write")}
        self.marks: Counter[tuple[str, str, str]] = Counter()

    def refresh(self) -> None:
        with cluster(self.uri, 60) as rpc:
            for name, seen in self.subjects.items():
                while True:
                    page = getattr(rpc, name).read_log(after=max(seen, default=0), limit=2000)
                    for event in page:
                        seen[int(event["sequence"])] = event["subject"]
                        for mark in set(self.marker.findall(json.dumps(event["data"]))):
                            self.marks[name, event["type"], mark] += 1
                    if len(page) < 2000:
                        break

    def lost(self, service: str, acked: Iterable[Outcome]) -> int:
        """Acknowledged writes whose position in the log does not hold their stream (the
        reply's id is the stream's, as shared/runtime/bases.py answers)."""
        seen = self.subjects[service]
        return sum(1 for o in acked
                   if seen.get(o.position or 0, "").partition("-")[2] != o.id)

    def duplicates(self) -> int:
        """Records beyond the first of one type carrying one request's marker."""
        return sum(count - 1 for count in self.marks.values() if count > 1)


def settle(uri: str, timeout: float = 120) -> bool:
    """Wait until every relay has published its log and every view has folded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with cluster(uri, 10) as rpc:
                if all(getattr(rpc, n).status()["relay"]["lag"] == 0
                       for n in catalogue.names("write")) and all(
                        not (s := getattr(rpc, n).status())["rebuilding"]
                        and all(src["lag"] == 0 for src in s["sources"].values())
                        for n in catalogue.names("view")):
                    return True
        except Exception:  # a service still restarting: ask again
            pass
        time.sleep(0.5)
    return False


def view_checkpoints(uri: str, views: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """view -> source log -> the view's checkpoint on it (every view, or those named)."""
    with cluster(uri, 10) as rpc:
        return checkpoints_of(rpc, views)


def checkpoints_of(rpc: Any, views: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
    """`view_checkpoints` asked through a started proxy."""
    return {n: {source: s["checkpoint"]
                for source, s in getattr(rpc, n).status()["sources"].items()}
            for n in (catalogue.names("view") if views is None else views)}


def projection_of(view: str) -> Any:
    """The projection a catalogued view service folds (its `view` provider's)."""
    module, _, cls = catalogue.get(view).cls.partition(":")
    return getattr(importlib.import_module(module), cls).view.projection


def _rows(engine: Engine, table: Any, where: Any = None) -> list[tuple[Any, ...]]:
    query = select(*table.c) if where is None else select(*table.c).where(where)
    with engine.connect() as conn:
        return sorted((tuple(row) for row in conn.execute(query)), key=repr)


def view_differences(view: str, live: Engine, uri: str) -> list[str]:
    """The tables (and checkpoints) where the live view differs from one folded afresh
    from the logs; [] when they are equal."""
    projection = projection_of(view)
    fresh = Projector.in_memory(projection)
    fresh.rebuild(RemoteLogs(uri, 60))
    differ = [t.name for t in projection.metadata.sorted_tables
              if _rows(live, t) != _rows(fresh.engine, t)]
    mine = projection_checkpoints.c.projection == projection.name
    if _rows(live, projection_checkpoints, mine) != _rows(fresh.engine, projection_checkpoints,
                                                          mine):
        differ.append(projection_checkpoints.name)
    fresh.engine.dispose()
    return differ
