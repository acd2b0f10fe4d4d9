"""The cases service: residents' difficulties taken up and chased until solved, in its own log.

Entrypoints only. The commands' RPCs come from the table (commands.py) through
shared/runtime/bases.WriteService: the signed principal is checked, the command loaded, decided
by the pure domain in a `Context` (time, principal, policies, working-day calendar, the roster)
and appended. The roster is the visits log's, followed over its `read_log` RPC. The clock ticks
the time-driven rules (timed.py); the queries read the case's stream or the in-memory index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from nameko.rpc import rpc

from services.cases import domain, events, rights, schemas, timed
from services.cases.case_policy import CasePolicy, load_case_policy
from services.cases.commands import COMMANDS
from shared.campaign.roster import ROSTER_EVENT_TYPES, Roster
from shared.campaign.workdays import default_calendar
from shared.eventlog import NewEvent, Record
from shared.kernel.commands import MemoryFold
from shared.kernel.errors import NotFound
from shared.kernel.timed import Clock
from shared.runtime import bases
from shared.runtime.auth import Principal
from shared.runtime.providers import Fold, LogReader, RemoteLogs
from shared.runtime.timed import ClockProvider, every

ROSTER_SOURCE = "visits"
PAGE = 500


@cache
def case_policy() -> CasePolicy:
    """case_policy.yml (or $GRASSROOTS_CASE_POLICY), read once per process."""
    return load_case_policy()


class RemoteRoster:
    """The roster folded from the visits log over RPC, reading only what was appended since
    the last call (the kernel's MemoryFold reads a service's own log only)."""

    def __init__(self) -> None:
        self.roster, self.position = Roster(), 0

    def current(self, logs: RemoteLogs) -> Roster:
        while page := logs(ROSTER_SOURCE, self.position, PAGE, None):
            for record in page:
                if record.type in ROSTER_EVENT_TYPES:
                    self.roster = self.roster.apply(record)
                self.position = record.position
            if len(page) < PAGE:
                break
        return self.roster


def _plain_step(index: domain.CaseIndex, record: Record) -> domain.CaseIndex:
    """The index folds what it may show anyone: personal fields withheld, nothing decrypted."""
    return index.apply(record._replace(data=record.plain()))


class CasesService(bases.WriteService):
    name = "cases"
    commands = COMMANDS
    contract = events.SCHEMAS

    logs: RemoteLogs = LogReader()
    clock: Clock = ClockProvider()
    index: MemoryFold[domain.CaseIndex] = Fold(domain.CaseIndex, _plain_step, events.TYPES)
    roster_fold = RemoteRoster()

    def context(self, who: Principal, now: datetime) -> domain.Context:
        return domain.Context(now, who, self.policy, case_policy(), default_calendar(),
                              self.roster_fold.current(self.logs))

    def decide(self, command: Any, history: list[Record], who: Principal,
               now: datetime) -> list[NewEvent]:
        return domain.decide(command, history, self.context(who, now))

    @every("CASE_TIMER_SECONDS", 60)
    def tick(self) -> int:
        """Time-driven commands due now; returns how many events this tick appended."""
        now = self.clock.now()
        return len(timed.tick(self.log, self.index, lambda who: self.context(who, now)))

    @rpc
    def get_case(self, principal: Any, case_id: str) -> dict[str, Any]:
        who = self.trust.verify(principal, "get_case", [case_id])
        state = domain.fold_case(self.log.read_stream(f"case-{case_id}"))
        if state is None:
            raise NotFound("case", case_id)
        now = datetime.now(UTC)
        shown = rights.sees_personal_data(who, state.unit_id, self.roster_fold.current(self.logs),
                                          self.policy.local_date(now))
        return schemas.CaseSchema().dump(domain.read_back(state, self.policy, shown))

    @rpc
    def get_case_timeline(self, principal: Any, case_id: str) -> dict[str, Any]:
        self.trust.verify(principal, "get_case_timeline", [case_id])
        records = self.log.read_stream(f"case-{case_id}")
        if not records:
            raise NotFound("case", case_id)
        entries = [{"position": r.position, "type": r.type, "actor": r.actor,
                    "recorded_at": r.recorded_at, "data": r.plain()} for r in records]
        return schemas.TimelineSchema().dump({"id": case_id, "events": entries})

    @rpc
    def list_cases(self, principal: Any, unit_id: str | None = None, state: str | None = None,
                   overdue: bool | None = None, page: int = 1,
                   page_size: int = 50) -> dict[str, Any]:
        """Cases in id order, personal data withheld (GET /cases/{id} shows it to whom it may)."""
        self.trust.verify(principal, "list_cases", [unit_id, state, overdue, page, page_size])
        found = [c for _, c in sorted(self.index.current(self.log).cases.items())
                 if (unit_id is None or c.unit_id == unit_id)
                 and (state is None or c.state == state)
                 and (overdue is None or c.overdue == overdue)]
        start = (page - 1) * page_size
        cases = [domain.read_back(c, self.policy, False) for c in found[start:start + page_size]]
        return schemas.CaseListSchema().dump({"cases": cases, "page": page,
                                              "page_size": page_size, "total": len(found)})
