"""The demo's month of cases: hotline calls and petitions registered today, then taken as far
as each one's fate says through the API by the people who would (a supervisor assigns,
reopens, parks and closes; the unit's head accepts and resolves; callback staff call the
resident back), and the case board that results.

Cases are registered now (a command is decided at the time it is sent), so their deadlines
run from today: the ones left assigned or accepted are chased as overdue by the cases
service's clock once their working days pass, and the board counts them then. The visits the
demo records bring cases of their own (difficulties and referred hazards), which wait to be
assigned.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import requests

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
Step = tuple[str, str, str, dict[str, Any]]  # who, method, path, body


def plan_cases(units: list[str], today: dt.date, seed: int, count: int = 36) -> list[Step]:
    """Every request of the month of cases, in the order they are sent."""
    rng = random.Random(seed)
    steps: list[Step] = []
    for n in range(1, count + 1):
        case_id = f"k-{today:%Y%m}-{n:03d}"
        unit = rng.choice(units)
        hotline = rng.random() < 0.6
        steps.append(("hotline" if hotline else "operator", "POST", "/cases", {
            "id": case_id, "origin": "hotline" if hotline else "petition",
            "category": rng.choice(CATEGORIES), "description": rng.choice(PROBLEMS),
            "place": {"township": "Qiaotou", "village": f"Village {rng.randrange(1, 9)}"},
            "unit_id": unit}))
        fate = rng.choices(list(FATES), WEIGHTS)[0]
        for action in FATES[fate]:
            steps.append(_step(action, case_id, unit, today))
    return steps


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
