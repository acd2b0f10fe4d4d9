"""Time-driven commands, the pure parts: the clock, the command id, and the reminder rule over
the per-cadre days folded from visit events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.visits import domain as d
from services.visits import reminders
from shared.campaign.policy import Policy, ThemeMonth
from shared.kernel.errors import Denied
from shared.kernel.timed import Due, ManualClock, command_id
from shared.runtime.auth import Principal

POLICY = Policy(timezone="Asia/Shanghai", fixed_day=28, min_days=2, reminder_lead_days=3)


def local(day: int, hour: int = 0, month: int = 3) -> datetime:
    """An instant at `hour`:00 on `day` March 2026 in Shanghai (UTC+8)."""
    return datetime(2026, month, day, hour, tzinfo=UTC) - timedelta(hours=8)


@dataclass(frozen=True)
class Rec:
    type: str
    data: dict[str, Any]


def roster(*leaves: tuple[str, str, str]) -> d.Roster:
    records = [Rec(d.UNIT_REGISTERED, {"unit_id": "u", "name": "U", "kind": "township"})]
    for cadre in ("c-1", "c-2", "c-3"):
        records.append(Rec(d.CADRE_ENROLLED, {"cadre_id": cadre, "name": cadre, "unit_id": "u",
                                              "role": "staff", "effective_from": "2026-01-01"}))
    for cadre, start, end in leaves:
        records.append(Rec(d.CADRE_LEAVE_GRANTED, {"cadre_id": cadre, "from": start,
                                                   "to": end, "reason": "ill"}))
    return d.fold_roster(records)


def recorded(visit_id: str, day: str, *cadres: str, pending: tuple[str, ...] = ()) -> Rec:
    return Rec(d.VISIT_RECORDED, {"visit_id": visit_id, "date": day, "cadre_ids": list(cadres),
                                  "pending_cadre_ids": list(pending), "backfilled": False})


def fold(*records: Rec) -> reminders.MonthDays:
    state = reminders.MonthDays()
    for record in records:
        state.apply(record)
    return state


def reminded(state: reminders.MonthDays, at: datetime, policy: Policy = POLICY,
             ros: d.Roster | None = None) -> dict[str, tuple[int, bool]]:
    dues = reminders.due(state, ros or roster(), at, policy)
    return {due.command.cadre_id: (due.command.days_so_far, due.command.fixed_day_met)
            for due in dues}


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(local(1))
    assert clock.now() == clock.now() == local(1)
    clock.advance(timedelta(days=2))
    assert clock.now() == local(3)
    clock.set(local(9))
    assert clock.now() == local(9)
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 3, 1))  # noqa: DTZ001 - the point of the test


def test_command_id_names_service_rule_subject_and_level() -> None:
    due = Due("r", "c-1@2026-03", "one", "s", command=None)
    assert command_id("visits", due) == command_id("visits", Due("r", "c-1@2026-03", "one",
                                                                 "other-stream", command=1))
    others = {command_id("visits", Due("r2", "c-1@2026-03", "one", "s", None)),
              command_id("visits", Due("r", "c-1@2026-04", "one", "s", None)),
              command_id("visits", Due("r", "c-1@2026-03", "two", "s", None)),
              command_id("cases", due)}
    assert command_id("visits", due) not in others and len(others) == 4


def test_nothing_before_the_lead_time_then_cadres_short_of_the_quota() -> None:
    state = fold(recorded("v1", "2026-03-10", "c-1"), recorded("v2", "2026-03-11", "c-1", "c-2"))
    assert reminded(state, local(24, 23)) == {}
    assert reminded(state, local(25, 0)) == {"c-1": (2, False), "c-2": (1, False),
                                             "c-3": (0, False)}
    assert reminded(state, local(29, 0)) == {}  # the fixed day is over


def test_on_the_fixed_day_a_cadre_with_the_quota_and_the_day_is_not_reminded() -> None:
    state = fold(recorded("v1", "2026-03-10", "c-1", "c-2"), recorded("v2", "2026-03-28", "c-1"))
    assert reminded(state, local(28, 20)) == {"c-2": (1, False), "c-3": (0, False)}
    # a theme month asks for more days: one short of three is short
    theme = Policy(theme_months=(ThemeMonth("2026-03", 3),))
    assert reminded(state, local(28, 20), theme)["c-1"] == (2, True)


def test_only_confirmed_days_count_and_corrections_retractions_withdrawals_apply() -> None:
    state = fold(
        recorded("v1", "2026-03-10", "c-1", "c-2", pending=("c-2",)),
        recorded("v2", "2026-03-12", "c-1", "c-3"),
        recorded("v3", "2026-02-27", "c-3"),
        Rec(d.VISIT_CORRECTED, {"visit_id": "v3", "date": "2026-03-13", "backfilled": False}),
        Rec(d.PARTICIPATION_WITHDRAWN, {"visit_id": "v2", "cadre_id": "c-3", "reason": "no"}),
        Rec(d.VISIT_RETRACTED, {"visit_id": "v2", "reason": "wrong"}),
    )
    assert reminded(state, local(25)) == {"c-1": (1, False), "c-2": (0, False),
                                          "c-3": (1, False)}
    state.apply(Rec(d.PARTICIPATION_CONFIRMED, {"visit_id": "v1", "cadre_id": "c-2"}))
    assert reminded(state, local(25))["c-2"] == (1, False)
    assert state.days("2026-02") == {}  # v3 moved to March


def test_cadres_on_leave_today_or_on_the_fixed_day_are_exempt() -> None:
    ros = roster(("c-1", "2026-03-20", "2026-03-25"), ("c-2", "2026-03-28", "2026-03-31"))
    assert set(reminded(fold(), local(25), ros=ros)) == {"c-3"}
    assert set(reminded(fold(), local(26), ros=ros)) == {"c-1", "c-3"}  # back from leave


def test_a_reminder_in_the_fold_is_not_due_again() -> None:
    state = fold(Rec(d.CADRE_REMINDED, {"cadre_id": "c-1", "month": "2026-03",
                                        "rule": reminders.RULE, "level": reminders.LEVEL,
                                        "days_so_far": 0, "fixed_day_met": False}))
    assert set(reminded(state, local(26))) == {"c-2", "c-3"}


def test_the_decision_is_once_per_rule_and_level_and_only_the_timers() -> None:
    command = d.RemindCadre("c-1", "2026-03", reminders.RULE, reminders.LEVEL, 1, False)
    events = d.decide(command, [], roster(), local(25), POLICY, principal=reminders.TIMER)
    assert [(e.type, e.data["days_so_far"]) for e in events] == [(d.CADRE_REMINDED, 1)]
    history = [Rec(e.type, e.data) for e in events]
    assert d.decide(command, history, roster(), local(26), POLICY,  # type: ignore[arg-type]
                    principal=reminders.TIMER) == []
    with pytest.raises(Denied):
        d.decide(command, [], roster(), local(25), POLICY, principal=Principal("operator"))


def test_lead_days_are_read_from_the_policy() -> None:
    early = Policy(reminder_lead_days=10)
    assert set(reminded(fold(), local(18), early)) == {"c-1", "c-2", "c-3"}
    assert reminded(fold(), local(17), early) == {}
