"""What the cases tests share: a roster of two units, principals, a context and a case
stream kept as records, so that a test reads as commands and what they appended."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from services.cases import domain as d
from services.cases.case_policy import load_case_policy
from shared.campaign.policy import Policy
from shared.campaign.roster import CADRE_ENROLLED, UNIT_REGISTERED, Roster, fold_roster
from shared.campaign.workdays import load_calendar
from shared.eventlog import NewEvent
from shared.kernel.contracts import instance
from shared.runtime.auth import Principal

POLICY = Policy(timezone="Asia/Shanghai")
CASES = load_case_policy()
CALENDAR = load_calendar()


@dataclass(frozen=True)
class Rec:
    type: str
    data: dict[str, Any]
    version: int


def roster() -> Roster:
    records = [Rec(UNIT_REGISTERED, {"unit_id": u, "name": u, "kind": "township"}, 0)
               for u in ("u1", "u2")]
    records += [Rec(CADRE_ENROLLED, {"cadre_id": c, "name": c, "unit_id": u, "role": "staff",
                                     "effective_from": "2025-01-01"}, 0)
                for c, u in (("c1", "u1"), ("c2", "u2"))]
    return fold_roster(records)


ROSTER = roster()
P = {
    "operator": Principal("operator", token_id="op"),
    "hotline": Principal("hotline", token_id="hl"),
    "supervisor": Principal("supervisor", token_id="sv"),
    "callback": Principal("callback", token_id="cb"),
    "auditor": Principal("auditor", token_id="au"),
    "head1": Principal("head", cadre_id="h1", unit_id="u1", token_id="h1"),
    "head2": Principal("head", cadre_id="h2", unit_id="u2", token_id="h2"),
    "cadre1": Principal("cadre", cadre_id="c1", token_id="c1"),
    "cadre2": Principal("cadre", cadre_id="c2", token_id="c2"),
    "timer": Principal("timer", token_id="timer"),
}


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    """An instant on a local date in Shanghai."""
    return dt.datetime.combine(day, dt.time(hour), tzinfo=POLICY.tz)


def context(who: str | Principal, now: dt.datetime) -> d.Context:
    principal = P[who] if isinstance(who, str) else who
    return d.Context(now, principal, POLICY, CASES, CALENDAR, ROSTER)


@dataclass
class Case:
    """A case's stream in memory: `send` decides against it and appends what came out."""

    case_id: str = "k1"
    records: list[Rec] = field(default_factory=list)

    def send(self, command: Any, who: str | Principal, now: dt.datetime) -> list[NewEvent]:
        events = d.decide(command, self.records, context(who, now))
        for event in events:
            check(event)
            self.records.append(Rec(event.type, event.data, len(self.records) + 1))
        return events

    @property
    def state(self) -> d.CaseState:
        state = d.fold_case(self.records)
        assert state is not None
        return state

    def types(self) -> list[str]:
        return [r.type for r in self.records]


def check(event: NewEvent) -> None:
    """The event keeps to the published contract (as the service layer checks it)."""
    from services.cases.events import SCHEMAS

    assert instance(SCHEMAS[event.type]).validate(event.data) == {}, event


def register(case: Case, now: dt.datetime, category: str = "complaint") -> None:
    case.send(d.RegisterCase(case.case_id, "hotline", category, "the lane floods",
                             {"township": "Qiaotou"},
                             resident={"id": None, "name": "Li", "phone": "13800000000",
                                       "address": "1 Lane"}), "hotline", now)
