"""`grassroots demo`: a realistic district month, loaded through the HTTP API.

Twelve units and about 150 cadres. Most cadres go down on the fixed day and their unit's day;
some miss the 28th, some manage only one day, some are on leave (part or all of the month),
a few are transferred and two are removed from the roster; some visits are corrected or
retracted, some find a difficulty or refer a hazard (the cases service opens a case for
each). Visits dated more than the policy's backfill days ago are flagged backfilled by the
platform itself, as recorded now. Then a month of cases (demo_cases.py) and the case board.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from tqdm import tqdm

from shared.campaign.policy import load_policy
from shared.campaign.workdays import default_calendar
from shared.tools.demo_cases import plan_cases, render_board, send_cases, wait_for_chase
from shared.tools.platform import api_address

UNITS = [
    ("civil-affairs", "District Civil Affairs Bureau", "department", None),
    ("agriculture", "District Agriculture Bureau", "department", 10),
    ("human-resources", "District Human Resources Bureau", "department", None),
    ("petitions", "District Petitions Bureau", "department", 5),
    ("qiaotou", "Qiaotou Township", "township", 15),
    ("shanhe", "Shanhe Township", "township", 12),
    ("baishi", "Baishi Township", "township", None),
    ("dongcheng", "Dongcheng Street Office", "street", 20),
    ("xicheng", "Xicheng Street Office", "street", 8),
    ("nanguan", "Nanguan Street Office", "street", None),
    ("hepingli", "Hepingli Community", "community", 18),
    ("liuyin", "Liuyin Community", "community", 31),
]
SURNAMES = [
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun",
    "Hu", "Zhu", "Gao", "Lin", "He", "Guo", "Ma", "Luo",
]
GIVEN = [
    "Wei", "Fang", "Min", "Jing", "Lei", "Qiang", "Jun", "Yang", "Yan", "Jie", "Tao", "Ming",
    "Chao", "Xia", "Hua", "Ping", "Gang", "Hui",
]
VILLAGES = ["Dongshan", "Xiwan", "Beiling", "Nanxi", "Taoyuan", "Shiqiao", "Longtan", "Fenghuang"]
THINKS = ["wants the road to the market repaired before the rains",
          "worried about school fees for two children", "asks how the new medical insurance works",
          "hopes the enterprise can get its loan extended", "glad the water supply is stable now"]


@dataclass
class Plan:
    """What the demo will send, built up front so the progress bar knows the total."""

    month: dt.date
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def add(self, method: str, path: str, body: dict[str, Any]) -> None:
        self.requests.append((method, path, body))


def default_month(today: dt.date, fixed_day: int) -> dt.date:
    """This month once its fixed day has come, else last month: no visit is in the future."""
    if today.day >= fixed_day:
        return today.replace(day=1)
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def _month_length(month: dt.date) -> int:
    return calendar.monthrange(month.year, month.month)[1]


def _days(month: dt.date, today: dt.date) -> list[dt.date]:
    """The month's days up to today: no visit is recorded for the future."""
    every = (month + dt.timedelta(n) for n in range(_month_length(month)))
    return [d for d in every if d <= today]


def _visit(rng: random.Random, visit_id: str, cadre_ids: list[str], day: dt.date,
           township: str) -> dict[str, Any]:
    kind = rng.choice(["household", "household", "enterprise", "hardship", "empty_nest_elder",
                       "left_behind_child", "petitioner"])
    body: dict[str, Any] = {
        "id": visit_id, "cadre_ids": cadre_ids, "date": day.isoformat(),
        "place": {"township": township, "village": rng.choice(VILLAGES)},
        "target": {"kind": kind},
        "diary": {"thinks": rng.choice(THINKS), "notes": "followed up on the spot"},
        "delivered": rng.sample(["policy", "relief", "technology", "information", "legal",
                                 "services"], 2),
        "helped": rng.sample(["difficulty", "development", "dispute", "safety"], 1),
        "tags": rng.sample(["livelihood", "serving_enterprises", "empty_nest_elderly",
                            "left_behind_children"], 1),
    }
    if kind != "enterprise":
        body["target"]["resident"] = {
            "name": rng.choice(SURNAMES) + " " + rng.choice(GIVEN),
            "phone": f"139{rng.randrange(10**8):08d}", "address": f"{rng.randrange(1, 90)} Lane",
        }
    if rng.random() < 0.1:
        body["hazards"] = [{"description": "loose electric wiring in the yard",
                            "status": "referred"}]
    if rng.random() < 0.05:
        body["difficulties"] = [{"category": "help",
                                 "description": "needs help applying for the care subsidy"}]
    return body


def build_plan(month: dt.date, today: dt.date, fixed_day: int, seed: int) -> Plan:
    rng = random.Random(seed)
    plan = Plan(month)
    days = _days(month, today)
    fixed_date = month.replace(day=min(fixed_day, _month_length(month)))
    fixed = fixed_date if fixed_date in days else None
    since = (month - dt.timedelta(days=40)).isoformat()
    serial = 0
    for unit_id, name, kind, unit_day in UNITS:
        plan.add("POST", "/units", {"id": unit_id, "name": name, "kind": kind,
                                    "unit_day": unit_day})
    for unit_id, _name, _kind, unit_day in UNITS:
        staff = [f"{unit_id}-{n:02d}" for n in range(1, 14)]
        for n, cadre_id in enumerate(staff):
            role = "head" if n == 0 else "leader" if n < 3 else "staff"
            plan.add("POST", "/cadres", {
                "id": cadre_id, "name": rng.choice(SURNAMES) + " " + rng.choice(GIVEN),
                "unit_id": unit_id, "role": role, "effective_from": since,
                "liaison_unit_ids": [rng.choice([u for u in UNITS if u[0] != unit_id])[0]]
                if role == "leader" else [],
            })
        township = name if kind == "township" else rng.choice(["Qiaotou", "Shanhe", "Baishi"])
        u_day = None
        if unit_day:  # the rule's own clamping: the month's last day in shorter months
            clamped = month.replace(day=min(unit_day, _month_length(month)))
            u_day = clamped if clamped in days else None
        for cadre_id in staff:
            profile = rng.random()
            if profile < 0.05:  # on leave the whole month
                plan.add("POST", f"/cadres/{cadre_id}/leave", {
                    "from": month.isoformat(), "to": days[-1].isoformat(), "reason": "sick leave"})
                continue
            chosen = set(rng.sample(days, min(rng.randint(1, 2), len(days))))
            if profile < 0.09 and fixed:  # leave over the fixed day: exempt from that rule
                plan.add("POST", f"/cadres/{cadre_id}/leave", {
                    "from": (fixed - dt.timedelta(days=1)).isoformat(),
                    "to": fixed.isoformat(), "reason": "training course"})
                chosen -= {fixed, fixed - dt.timedelta(days=1)}
            elif profile < 0.17 and fixed:  # misses the 28th
                chosen.discard(fixed)
            elif fixed:
                chosen.add(fixed)
            if u_day and profile >= 0.05:
                chosen.add(u_day)
            if 0.17 <= profile < 0.24:  # manages only one day
                chosen = {rng.choice(days)}
            for day in sorted(chosen):
                serial += 1
                partner = [rng.choice(staff[:3])] if rng.random() < 0.2 else []
                cadres = [cadre_id, *[p for p in partner if p != cadre_id]]
                visit_id = f"v-{month:%Y%m}-{serial:04d}"
                plan.add("POST", "/visits", _visit(rng, visit_id, cadres, day, township))
                if rng.random() < 0.03:
                    plan.add("POST", f"/visits/{visit_id}/corrections", {
                        "diary": {"thinks": "corrected: asks about the pension top-up",
                                  "notes": "details checked with the village committee"},
                        "reason": "diary completed after checking with the village"})
                elif rng.random() < 0.02:
                    plan.add("POST", f"/visits/{visit_id}/retraction", {
                        "reason": "recorded twice by mistake"})
    movers = rng.sample([(u[0], f"{u[0]}-{n:02d}") for u in UNITS for n in range(4, 14)], 3)
    for unit_id, cadre_id in movers:
        plan.add("POST", f"/cadres/{cadre_id}/transfer", {
            "to_unit_id": rng.choice([u for u in UNITS if u[0] != unit_id])[0],
            "effective_from": (month + dt.timedelta(days=14)).isoformat()})
    staying = [(u[0], f"{u[0]}-{n:02d}") for u in UNITS for n in range(4, 14)]
    for _unit_id, cadre_id in rng.sample([c for c in staying if c not in movers], 2):
        plan.add("POST", f"/cadres/{cadre_id}/removal", {
            "effective_from": (month + dt.timedelta(days=20)).isoformat(),
            "reason": "retired"})
    return plan


def _operator_token(tokens_file: str | None) -> str:
    from shared.runtime.auth import TokenStore

    return TokenStore(tokens_file).create("operator")


def _case_tokens(operator: str, tokens_file: str | None) -> dict[str, str]:
    """Who sends the cases' commands: hotline, supervisor and callback staff, and each unit's
    head (cadre `<unit>-01`, enrolled as head by the plan) for its unit; a day's tokens in
    the gateway's store (`tokens_file`, else the default)."""
    from shared.runtime.auth import TokenStore

    store = TokenStore(tokens_file)
    tokens = {"operator": operator, **{role: store.create(role, days=1) for role in
                                       ("hotline", "supervisor", "callback")}}
    tokens.update({unit: store.create("head", f"{unit}-01", unit, days=1)
                   for unit, *_ in UNITS})
    return tokens


def send_all(plan: Plan, base: str, token: str) -> Iterator[tuple[str, int, Any]]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    for method, path, body in tqdm(plan.requests, desc="loading the district month",
                                   unit="req", file=sys.stderr, disable=None):
        reply = session.request(method, base + path, json=body, timeout=30)
        yield path, reply.status_code, reply.json()


def run_demo(
    api: str | None = None, month: str | None = None, seed: int = 7, token: str | None = None,
    tokens_file: str | None = None,
) -> int:
    """Load the month through the API and print its compliance table, then the month of
    cases and the case board once the cases service's clock has chased the late ones (waiting
    at most its interval, $CASE_TIMER_SECONDS as `make up` passes it, and half a minute); 1 if
    anything failed."""
    policy = load_policy()
    today = dt.datetime.now(policy.tz).date()
    first = (dt.date.fromisoformat(month + "-01") if month
             else default_month(today, policy.fixed_day))
    plan = build_plan(first, today, policy.fixed_day, seed)
    base = f"http://{api or api_address()}/api/v1"
    try:
        token = token or _operator_token(tokens_file)
        replies = list(send_all(plan, base, token))
        tokens = _case_tokens(token, tokens_file)
        cases = list(send_cases(plan_cases([u[0] for u in UNITS], today, seed, policy,
                                           default_calendar()), base, tokens.__getitem__))
        failures = [(p, s, b) for p, s, b in replies + cases if s >= 400 and s != 409]
    except requests.ConnectionError:
        print(f"cannot reach the API at {base}: is `make up` running?", file=sys.stderr)
        return 1
    for path, status, body in failures[:10]:
        print(f"refused {status} {path}: {body}", file=sys.stderr)
    head = max((b.get("position", 0) for _p, s, b in replies if s < 300), default=0)
    report = wait_for_view(base, token, f"{first:%Y-%m}", head)
    print(render(report))
    cases_head = max((b.get("position", 0) for _p, s, b in cases if s < 300), default=0)
    print()
    wait_for_view(base, token, f"{today:%Y-%m}", cases_head, view="case-board", log="cases")
    print("waiting for the cases service's clock to chase the late petitions ...",
          file=sys.stderr)
    tick = float(os.environ.get("CASE_TIMER_SECONDS") or 60)
    print(render_board(wait_for_chase(
        lambda: _get(base, token, "case-board", month=f"{today:%Y-%m}"),
        tick + 30)))
    return 0 if not failures else 1


def _get(base: str, token: str, path: str, **params: str) -> dict[str, Any]:
    reply = requests.get(f"{base}/{path}", params=params, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    return reply.json()


def wait_for_view(base: str, token: str, month: str, position: int, timeout: float = 60,
                  view: str = "compliance", log: str = "visits") -> dict[str, Any]:
    """The month's report of `view` once it has folded `log` up to `position`."""
    deadline = time.monotonic() + timeout
    while True:
        report = _get(base, token, view, month=month)
        if report["checkpoints"].get(log, 0) >= position or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def render(report: dict[str, Any]) -> str:
    """The compliance table per unit, as a person reads it."""
    lines = [f"Compliance, {report['month']}", "",
             f"{'unit':<18}{'cadres':>7}{'compliant':>10}{'exempt':>7}{'rate':>8}"]
    for u in report["units"]:
        rate = "-" if u["rate"] is None else f"{u['rate']:.0%}"
        lines.append(f"{u['unit_id']:<18}{u['cadres']:>7}{u['compliant']:>10}"
                     f"{u['exempt']:>7}{rate:>8}")
    missed = [c for c in report["cadres"] if c["compliant"] is False]
    lines += ["", f"{len(missed)} cadres not compliant, for example:"]
    for c in missed[:8]:
        why = []
        if c["days"] < 2:
            why.append(f"{c['days']} day(s)")
        if c["fixed_day_met"] is False:
            why.append("missed the fixed day")
        if c["unit_day_met"] is False:
            why.append("missed the unit day")
        lines.append(f"  {c['cadre_id']:<22}{', '.join(why)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_demo())

