"""The cases domain: a random walk of commands by random principals against a small reference
model, then the rules one at a time (callbacks, extensions, parking, the clock's rules)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.cases import domain as d
from services.cases import events as e
from services.cases import timed
from services.cases.case_book import CaseBook
from shared.eventlog import EventLog
from shared.kernel.errors import Conflict, Denied, DomainError, Rejected, UnknownReference
from shared.runtime.auth import Principal
from tests.unit.cases_support import CALENDAR, Case, P, at, context, register

MONDAY = dt.date(2025, 9, 22)
NOW = at(MONDAY)

# --- the reference model: written from the issue, not from the domain ----------------------

MODEL_STATES = {  # state -> {act: who may (sup: supervisors, unit: the assigned unit, caller)}
    "registered": {"assign": "sup"},
    "assigned": {"accept": "unit", "return": "unit"},
    "returned": {"assign": "sup"},
    "accepted": {"progress": "unit", "extend": "unit", "resolve": "unit", "park": "sup"},
    "extension_requested": {"progress": "unit", "decide": "sup", "resolve": "unit"},
    "resolved": {"callback": "caller"},
    "called_back": {"reopen": "sup", "close": "sup"},
    "parked": {},
    "closed": {},
}
UNIT_OF = {"head1": "u1", "head2": "u2", "cadre1": "u1", "cadre2": "u2"}
NAMES = {"assign": "assign_case", "accept": "accept_case", "return": "return_case",
         "progress": "note_progress", "extend": "request_extension",
         "decide": "decide_extension", "resolve": "resolve_case", "callback": "record_callback",
         "reopen": "reopen_case", "close": "close_case", "park": "park_case"}


class Model:
    def __init__(self) -> None:
        self.state, self.unit, self.resolver, self.unsatisfied = "registered", None, None, 0

    def may(self, act: str, who: str) -> type[DomainError] | None:
        """None when legal; else the error the domain must answer with (a bad value, which
        the caller knows of, is refused only after the state and the role allow the act)."""
        need = MODEL_STATES[self.state].get(act)
        if need is None:
            return Conflict
        if need == "unit" and UNIT_OF.get(who) != self.unit:
            return Denied
        if need == "sup" and who != "supervisor":
            return Denied
        if need == "caller" and (who not in ("supervisor", "callback") or who == self.resolver):
            return Denied
        return None


# Anyone at all, but mostly those who can act, so that walks reach the late states.
WHO = st.one_of(st.sampled_from(["supervisor", "head1", "cadre1", "callback"]),
                st.sampled_from(sorted(P)))


class CaseMachine(RuleBasedStateMachine):
    @initialize()
    def registered(self) -> None:
        self.case, self.model = Case(), Model()
        register(self.case, NOW)

    def attempt(self, act: str, who: str, command: object, after: str,
                bad: type[DomainError] | None = None) -> list:
        expected = self.model.may(act, who) or bad
        before = list(self.case.records)
        if expected is not None:
            with pytest.raises(expected):
                self.case.send(command, who, NOW)
            assert self.case.records == before  # a refusal appends nothing
            return []
        events = self.case.send(command, who, NOW)
        assert events, f"{act} by {who} in {self.model.state} appended nothing"
        self.model.state = after
        return events

    @rule(who=WHO, unit=st.sampled_from(["u1", "u1", "u2", "nowhere"]))
    def assign(self, who, unit):
        bad = UnknownReference if unit == "nowhere" else None
        if self.attempt("assign", who, d.AssignCase("k1", unit), "assigned", bad):
            self.model.unit = unit

    @rule(who=WHO)
    def accept(self, who):
        self.attempt("accept", who, d.AcceptCase("k1"), "accepted")

    @rule(who=WHO)
    def give_back(self, who):
        if self.attempt("return", who, d.ReturnCase("k1", "not ours"), "returned"):
            self.model.unit = None

    @rule(who=WHO)
    def progress(self, who):
        self.attempt("progress", who, d.NoteProgress("k1", "called the water company"),
                     self.model.state)

    @rule(who=WHO, days=st.integers(1, 30))
    def extend(self, who, days):
        bad = Rejected if days > 20 else None
        self.attempt("extend", who, d.RequestExtension("k1", days, "waiting for parts"),
                     "extension_requested", bad)

    @rule(who=WHO, yes=st.booleans())
    def decide_extension(self, who, yes):
        self.attempt("decide", who, d.DecideExtension("k1", "approved" if yes else "denied"),
                     "accepted")

    @rule(who=WHO)
    def resolve(self, who):
        if self.attempt("resolve", who, d.ResolveCase("k1", "solved", "drain cleared"),
                        "resolved"):
            self.model.resolver = who

    @rule(who=WHO, verdict=st.sampled_from(
        ["satisfied", "basically_satisfied", "unsatisfied"]))
    def callback(self, who, verdict):
        events = self.attempt("callback", who, d.RecordCallback("k1", verdict, "asked"),
                              "called_back")
        if events:
            self.model.unsatisfied += verdict == "unsatisfied"
            escalates = verdict == "unsatisfied" and self.model.unsatisfied == 2
            assert [ev.type for ev in events] == [e.CALLBACK_RECORDED] + (
                [e.CASE_ESCALATED] if escalates else [])

    @rule(who=WHO)
    def reopen(self, who):
        self.attempt("reopen", who, d.ReopenCase("k1", "still floods"), "accepted")

    @rule(who=WHO)
    def close(self, who):
        self.attempt("close", who, d.CloseCase("k1"), "closed")

    @rule(who=WHO, offset=st.integers(-1, 30))
    def park(self, who, offset):
        bad = Rejected if offset <= 0 else None
        review = MONDAY + dt.timedelta(days=offset)
        self.attempt("park", who, d.ParkCase("k1", "needs a budget", review), "parked", bad)

    @rule()
    def register_again(self):
        register(self.case, NOW)  # the same content: a retry, nothing new
        assert self.case.types().count(e.CASE_REGISTERED) == 1

    @invariant()
    def same_state_and_allowed_commands(self):
        if not hasattr(self, "case"):
            return
        state = self.case.state
        assert state.state == self.model.state
        assert state.unit_id == self.model.unit or self.model.state == "registered"
        assert sorted(d.allowed(state)) == sorted(NAMES[a] for a in MODEL_STATES[state.state])


TestCaseMachine = CaseMachine.TestCase
TestCaseMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


# --- focused rules --------------------------------------------------------------------------


def accepted_case(category: str = "complaint", day: dt.date = MONDAY) -> Case:
    case = Case()
    register(case, at(day), category)
    case.send(d.AssignCase("k1", "u1"), "supervisor", at(day))
    case.send(d.AcceptCase("k1"), "head1", at(day))
    return case


def test_a_second_unsatisfied_callback_escalates_once():
    case = accepted_case()
    for round_ in range(3):
        case.send(d.ResolveCase("k1", "explained", "talked it through"), "cadre1", NOW)
        events = case.send(d.RecordCallback("k1", "unsatisfied", "no change"), "callback", NOW)
        assert [ev.type for ev in events] == [e.CALLBACK_RECORDED] + (
            [e.CASE_ESCALATED] if round_ == 1 else [])
        case.send(d.ReopenCase("k1", "rework"), "supervisor", NOW)
    assert case.state.escalated and case.types().count(e.CASE_ESCALATED) == 1


def test_the_resolver_cannot_do_the_callback():
    case = accepted_case()
    case.send(d.ResolveCase("k1", "solved", "fixed"), "head1", NOW)
    with pytest.raises(Denied):
        case.send(d.RecordCallback("k1", "satisfied", "fine"), "head1", NOW)
    same_cadre = Principal("callback", cadre_id="h1", token_id="other")
    with pytest.raises(Denied, match="other than who resolved"):
        case.send(d.RecordCallback("k1", "satisfied", "fine"), same_cadre, NOW)
    case.send(d.RecordCallback("k1", "satisfied", "fine"), "callback", NOW)
    assert case.state.state == "called_back"


def test_an_illegal_command_names_the_state_and_the_commands_allowed():
    case = accepted_case()
    with pytest.raises(Conflict) as refused:
        case.send(d.CloseCase("k1"), "supervisor", NOW)
    assert str(refused.value) == ("case k1 is accepted: close_case is not allowed now; allowed: "
                                  "note_progress, request_extension, resolve_case, park_case")


def test_another_unit_may_not_act_on_the_case():
    case = Case()
    register(case, NOW)
    case.send(d.AssignCase("k1", "u1"), "supervisor", NOW)
    for who in ("head2", "cadre2", "operator"):
        with pytest.raises(Denied):
            case.send(d.AcceptCase("k1"), who, NOW)


def test_an_extension_is_asked_for_before_the_deadline_only():
    case = accepted_case("help")  # 3 working days from Monday 22 September: Thursday 25
    due = case.state.resolution.due
    assert due == dt.date(2025, 9, 25)
    late = at(due + dt.timedelta(days=1))
    with pytest.raises(Conflict, match="deadline"):
        case.send(d.RequestExtension("k1", 2, "parts"), "head1", late)
    assert case.state.state == "accepted"
    case.send(d.RequestExtension("k1", 2, "parts"), "head1", at(due, 23))
    case.send(d.DecideExtension("k1", "approved"), "supervisor", late)
    # Friday 26, then the make-up Sunday 28 September.
    assert case.state.resolution.due == dt.date(2025, 9, 28)


def test_assignment_counts_working_days_across_national_day():
    case = accepted_case("complaint", dt.date(2025, 9, 30))
    assert case.state.acceptance.due == dt.date(2025, 10, 9)
    assert case.state.resolution.due == CALENDAR.add_working_days(dt.date(2025, 9, 30), 13)
    case.send(d.ResolveCase("k1", "solved", "done"), "head1", at(dt.date(2025, 9, 30)))
    assert case.state.callback_due == dt.date(2025, 10, 9)  # the working day after


def test_parked_cases_come_back_on_their_review_date():
    case = accepted_case()
    review = dt.date(2025, 11, 3)
    case.send(d.ParkCase("k1", "needs next year's budget", review), "supervisor", NOW)
    assert case.state.state == "parked" and d.allowed(case.state) == []
    assert d.due_now(case.state, context("timer", at(review - dt.timedelta(days=1)))) == []
    [command] = d.due_now(case.state, context("timer", at(review, 0)))
    assert command == d.UnparkCase("k1", review.isoformat())
    with pytest.raises(Denied):
        case.send(command, "supervisor", at(review))
    case.send(command, "timer", at(review))
    assert case.state.state == "accepted"
    assert case.state.resolution.due == CALENDAR.add_working_days(review, 13)
    assert case.send(command, "timer", at(review, 12)) == []


def test_the_clocks_rules_fire_once_per_level_under_a_moved_clock(tmp_path):
    """Through the kernel's fire (command ids in a real log): warn, overdue, escalate, each
    once however often the clock ticks; an extension's new deadline is a new round. The
    clock reads the cases as the service does, from the case book in the log's database."""
    log = EventLog.open(f"sqlite:///{tmp_path / 'cases.db'}", service="cases")
    book = CaseBook()
    start = dt.date(2025, 9, 22)  # help: 3 working days, due Thursday 25
    for event in Case().send(d.RegisterCase("k1", "petition", "help", "a roof leaks",
                                            {"township": "Qiaotou"}), "operator", at(start)):
        log.append("case-k1", [event], expected_version=0)
    history = log.read_stream("case-k1")
    for who, cmd in (("supervisor", d.AssignCase("k1", "u1")), ("head1", d.AcceptCase("k1"))):
        events = d.decide(cmd, history, context(who, at(start)))
        log.append("case-k1", events, expected_version=history[-1].version)
        history = log.read_stream("case-k1")

    def tick(day: dt.date, hour: int = 10) -> list[str]:
        return [r.type for r in timed.tick(log, lambda: book.current(log).timed(),
                                           lambda who: context(who, at(day, hour)))]

    assert tick(start) == []
    assert tick(dt.date(2025, 9, 24)) == [e.DEADLINE_APPROACHING]  # one working day left
    assert tick(dt.date(2025, 9, 24), 18) == []
    assert tick(dt.date(2025, 9, 25)) == []
    assert tick(dt.date(2025, 9, 26)) == [e.CASE_OVERDUE]
    assert tick(dt.date(2025, 9, 27)) == []  # a Saturday: still one working day late
    # Three working days late (the 26th, the make-up Sunday 28th, the 29th): escalated.
    assert tick(dt.date(2025, 9, 29)) == [e.CASE_ESCALATED]
    assert tick(dt.date(2025, 9, 29), 18) == []
    for day in range(1, 12):
        tick(dt.date(2025, 10, day))
    types = [r.type for r in log.read_stream("case-k1")]
    for fired in (e.DEADLINE_APPROACHING, e.CASE_OVERDUE, e.CASE_ESCALATED):
        assert types.count(fired) == 1
