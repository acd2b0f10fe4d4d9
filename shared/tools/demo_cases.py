"""The demo's month of cases: hotline calls and petitions registered today, then taken as far
as each one's fate says through the API by the people who would (a supervisor assigns,
reopens, parks and closes; the unit's head accepts and resolves; callback staff call the
resident back), and the case board that results.

Hotline calls are registered as they come. Petitions are letters entered late: each says when
it was received (`received_at`, 5 to 25 working days ago), and its deadlines count from then,
so the ones still assigned or in progress are past them. The cases service's clock chases
those (overdue, and escalated once well past) on its next tick, every `CASE_TIMER_SECONDS`;
the demo waits for it before printing the board. The visits the demo records bring cases of
their own (difficulties and referred hazards), which wait to be assigned.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from shared.campaign.policy import Policy
from shared.campaign.workdays import WorkCalendar

CATEGORIES = ("urgent", "consultation", "help", "help", "complaint", "complaint")
PROBLEMS = ["the lane floods after every rain", "street light out for two weeks",
            "pension top-up not paid this quarter", "noise from a workshop at night",
            "the bus stop lost its shelter", "water pressure too low on the top floors"]
# A case's fate: the commands after registration, in order (who sends each: see `_who`).
FATES: dict[str, tuple[str, ...]] = {
    "waiting": (),
    "assigned": ("assign",),
    "in progress": ("assign", "accept", "progress"),
    "parked": ("assign", "accept", "park"),
    "awaiting callback": ("assign", "accept", "resolve"),
    "closed": ("assign", "accept", "resolve", "callback", "close"),
    "reopened": ("assign", "accept", "resolve", "callback-unsatisfied", "reopen", "resolve",
                 "callback", "close"),
}
WEIGHTS = (1, 2, 2, 1, 1, 4, 2)
LATE = (5, 25)  # how many working days ago a petition entered today was received
Step = tuple[str, str, str, dict[str, Any]]  # who, method, path, body


def plan_cases(units: list[str], today: dt.date, seed: int, policy: Policy,
               calendar: WorkCalendar, count: int = 36) -> list[Step]:
    """Every request of the month of cases, in the order they are sent."""
    rng = random.Random(seed)
    steps: list[Step] = []
    for n in range(1, count + 1):
        case_id = f"k-{today:%Y%m}-{n:03d}"
        unit = rng.choice(units)
        hotline = rng.random() < 0.6
        body = {
            "id": case_id, "origin": "hotline" if hotline else "petition",
            "category": rng.choice(CATEGORIES), "description": rng.choice(PROBLEMS),
            "place": {"township": "Qiaotou", "village": f"Village {rng.randrange(1, 9)}"},
            "unit_id": unit}
        if not hotline:
            day = working_days_before(today, rng.randint(*LATE), calendar)
            hour = dt.time(rng.randint(9, 16), rng.choice((0, 30)))
            body["received_at"] = dt.datetime.combine(day, hour, policy.tz).isoformat()
        steps.append(("hotline" if hotline else "operator", "POST", "/cases", body))
        fate = rng.choices(list(FATES), WEIGHTS)[0]
        for action in FATES[fate]:
            steps.append(_step(action, case_id, unit, today))
    return steps


def working_days_before(day: dt.date, n: int, calendar: WorkCalendar) -> dt.date:
    """The working day from which `day` is the n-th working day after (a letter arrives on
    one)."""
    back = day
    while calendar.working_days_between(back, day) < n or not calendar.is_working_day(back):
        back -= dt.timedelta(days=1)
    return back


def _step(action: str, case_id: str, unit: str, today: dt.date) -> Step:
    path = f"/cases/{case_id}/{action.partition('-')[0]}"
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "assign": ("supervisor", {"unit_id": unit}),
        "accept": (unit, {}),
        "progress": (unit, {"note": "met the resident; works ordered"}),
        "park": ("supervisor", {"reason": "needs next year's budget",
                                "review_date": (today + dt.timedelta(days=60)).isoformat()}),
        "resolve": (unit, {"outcome": "solved", "result": "fixed and checked on site"}),
        "callback": ("callback", {"satisfaction": "satisfied", "comment": "resident content"}),
        "callback-unsatisfied": ("callback", {"satisfaction": "unsatisfied",
                                              "comment": "the problem came back"}),
        "reopen": ("supervisor", {"reason": "the resident is not satisfied"}),
        "close": ("supervisor", {}),
    }
    who, body = bodies[action]
    return who, "POST", path, body


def send_cases(steps: list[Step], base: str,
               token: Callable[[str], str]) -> Iterator[tuple[str, int, Any]]:
    """Send each step with the token of who sends it (a unit id: that unit's head)."""
    session = requests.Session()
    for who, method, path, body in steps:
        headers = {"Authorization": f"Bearer {token(who)}"}
        reply = session.request(method, base + path, json=body, headers=headers, timeout=30)
        yield path, reply.status_code, reply.json()



def wait_for_chase(read: Callable[[], dict[str, Any]], timeout: float,
                   pause: float = 1.0) -> dict[str, Any]:
    """The case board (`read` fetches it) once the cases service's clock has chased the late
    cases: some are overdue and two reads `pause` apart show the view at the same log
    position (the tick's events all folded). After `timeout`, the board as it stands."""
    deadline = time.monotonic() + timeout
    last = read()
    while True:
        time.sleep(pause)
        board = read()
        chased = any(u["overdue"] for u in board["units"])
        if (chased and board["checkpoints"] == last["checkpoints"]) \
                or time.monotonic() > deadline:
            return board
        last = board


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def render_board(board: dict[str, Any]) -> str:
    """The case board per unit, as a person reads it (the waiting row: no unit yet)."""
    lines = [f"Case board, {board['month']} (cases registered in the month)", "",
             f"{'unit':<18}{'recv':>5}{'open':>5}{'late':>5}{'done':>5}{'shut':>5}"
             f"{'park':>5}{'redo':>5}{'respond':>8}{'solved':>7}{'happy':>6}{'visits':>7}"]
    for u in board["units"]:
        lines.append(
            f"{u['unit_id'] or '(waiting)':<18}{u['received']:>5}{u['open']:>5}"
            f"{u['overdue']:>5}{u['resolved']:>5}{u['closed']:>5}{u['parked']:>5}"
            f"{u['reopened']:>5}{_pct(u['response_rate']):>8}{_pct(u['resolution_rate']):>7}"
            f"{_pct(u['satisfaction_rate']):>6}{_pct(u['visit_share']):>7}")
    lines += ["", "recv received, late overdue now, done resolved, shut closed, redo reopened; "
                  "respond: accepted on time, solved: of resolved, happy: satisfied of "
                  "callbacks, visits: found on visits"]
    return "\n".join(lines)
