"""The cases service: residents' difficulties taken up and chased until solved, in its own log.

Entrypoints only. The commands' RPCs come from the table (commands.py) through
shared/runtime/bases.WriteService: the signed principal is checked, the command loaded, decided
by the pure domain in a `Context` (time, principal, policies, working-day calendar, the roster)
and appended. The roster is the visits log's, followed over its `read_log` RPC. The clock ticks
the time-driven rules (timed.py); the queries read the case's stream or the case book
(case_book.py, every case as it stands, in this service's database).
Visits' events open the cases of the difficulties found on them (intake.py), through the same
`execute` as any command, on live delivery and on each tick (what the bus did not bring), from
a checkpoint kept in this service's database (intake_view.py); a resident the visits service
forgets is forgotten here the same way. A resident id given at registration must be one the
platform issued (`issued`, which the decision asks through its `Context`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from eventlet.semaphore import Semaphore
from nameko.dependency_providers import Config
from nameko.events import event_handler
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc

from services.cases import (
    case_book,
    domain,
    events,
    intake,
    intake_view,
    open311,
    rights,
    schemas,
    timed,
)
from services.cases import open311_site as site
from services.cases.case_policy import CasePolicy, load_case_policy
from services.cases.commands import COMMANDS
from services.visits.events import VISIT_CORRECTED, VISIT_RECORDED, VISIT_RETRACTED
from shared.campaign.roster import ROSTER_EVENT_TYPES, Roster
from shared.campaign.workdays import default_calendar
from shared.eventlog import EventLog, NewEvent, Record
from shared.kernel.commands import Spares, execute, load
from shared.kernel.errors import NotFound
from shared.kernel.projection import Fetch, Projector
from shared.kernel.timed import Clock
from shared.runtime import bases
from shared.runtime.auth import Principal
from shared.runtime.providers import LogReader, RemoteLogs
from shared.runtime.timed import ClockProvider, every

VISITS = intake_view.SOURCE  # the log whose roster and visits this service follows
PAGE = 500
logger = logging.getLogger(__name__)


@cache
def case_policy() -> CasePolicy:
    """case_policy.yml (or $GRASSROOTS_CASE_POLICY), read once per process."""
    return load_case_policy()


class RemoteRoster:
    """The roster folded from the visits log over RPC, reading only what was appended since
    the last call (the kernel's MemoryFold reads a service's own log only). The intake feeds
    it the visits records it holds anyway, so taking a visit up asks the visits log nothing
    more. From a cold start it reads only the roster's events up to the log's head (the
    log's type index): a restart no longer reads every visit over RPC."""

    def __init__(self) -> None:
        self.roster, self.position, self.cold = Roster(), 0, True

    def current(self, logs: RemoteLogs, upto: int | None = None) -> Roster:
        """The roster at the visits log's head (an RPC at least), or, given `upto`, at that
        position or later (no RPC once fed that far)."""
        if upto is not None and self.position >= upto:
            return self.roster
        if self.cold:
            self._cold_start(logs)
        while page := logs(VISITS, self.position, PAGE, None):
            self.feed(page)
            if len(page) < PAGE:
                break
        return self.roster

    def _cold_start(self, logs: RemoteLogs) -> None:
        head, after, roster = logs.head(VISITS), 0, Roster()
        while page := logs.of_types(VISITS, after, PAGE, ROSTER_EVENT_TYPES):
            for record in page:
                if record.position <= head:
                    roster = roster.apply(record)
            after = page[-1].position
            if len(page) < PAGE or after >= head:
                break
        if self.position == 0:  # not fed meanwhile by another green thread
            self.roster, self.position = roster, head
        self.cold = False  # an empty visits log is not read from a cold start on every call

    def feed(self, records: Sequence[Record]) -> None:
        """Fold the records that continue what it read; those it has are skipped (two green
        threads may read one page), and a gap ends the feed (the next `current` reads it)."""
        for record in records:
            if record.position <= self.position:
                continue
            if record.position != self.position + 1:
                return
            if record.type in ROSTER_EVENT_TYPES:
                self.roster = self.roster.apply(record)
            self.position, self.cold = record.position, False


class VisitIntake:
    """Takes the visits log up in its order, from a durable checkpoint (intake_view.py): each
    visit event is taken up against the visit as it stood before it, each forgotten resident
    forgotten here too. A page's commands are appended first, then its facts and the
    checkpoint move in one transaction of the cases database: a restart resumes after the last
    page taken up, and a page taken up again (a crash in between) appends nothing, by the
    derived command ids and the forget marker already in the cases log."""

    def __init__(self) -> None:
        self.view = intake_view.IntakeView()
        self.projector: Projector | None = None
        self.lock = Semaphore()
        self.taken = 0  # taken up at least this far (another replica may be further on)

    def _projector(self, log: EventLog) -> Projector:
        if self.projector is None:
            self.projector = Projector(self.view, log.engine)
        return self.projector

    def issued(self, log: EventLog, resident_id: str) -> bool:
        """Whether the visits log, as far as taken up, issued this resident id."""
        return intake_view.issued(self._projector(log).engine, resident_id)

    def follow(self, log: EventLog, fetch: Fetch,
               context: Callable[[Sequence[Record]], domain.Context],
               event: dict[str, Any] | None = None) -> list[Record]:
        """Take up every visits record after the checkpoint: the one the bus brought if it is
        the next, else what the visits log holds; nothing for one already taken up (a
        redelivery, or a backlog the tick's catch-up overtook), without asking the visits
        log. Returns the records it appended to the cases log (a command sent before answers
        with its first records, which are older than `start`). `context(page)` is the
        decisions' context for a page of visits records."""
        appended: list[Record] = []
        live = [Record.from_cloudevent(event)] if event else []
        if live and live[0].position <= self.taken:
            return []
        with self.lock:
            projector = self._projector(log)
            start = log.last_position()
            position, hash_ = intake_view.head(projector.engine)
            self.taken = max(self.taken, position)
            if live and live[0].position <= position:
                return []  # taken up while this waited for the lock
            page = live if live and live[0].position == position + 1 else self._next(
                fetch, position)
            while page:
                if hash_ and page[0].prev_hash != hash_:
                    logger.error("the visits log at %d does not continue what the intake took "
                                 "up (was it replaced?)", page[0].position)
                    break
                ctx = context(page)
                with projector.engine.connect() as conn:
                    known = intake_view.facts(conn, (r.data["visit_id"] for r in page
                                                     if r.type in intake.TYPES))
                for record in page:
                    appended += self._take_up(log, record, ctx, known)
                if not projector.apply_batch(page)[0]:
                    break  # another replica took it up meanwhile: it moves on from there
                position, hash_ = page[-1].position, page[-1].hash
                self.taken = max(self.taken, position)
                page = self._next(fetch, position) if len(page) == PAGE else []
        return [r for r in appended if r.position > start]

    @staticmethod
    def _next(fetch: Fetch, position: int) -> Sequence[Record]:
        return fetch(VISITS, position, PAGE, None)

    def _take_up(self, log: EventLog, record: Record, ctx: domain.Context,
                 known: dict[str, intake.VisitFacts]) -> list[Record]:
        """One visits record: its commands decided and appended, like any command (`known`:
        the page's visits as they stand, moved on here)."""
        if record.type == intake.FORGETS:
            return self._forget(log, record.data["subject"])
        if record.type not in intake.TYPES:
            return []
        visit_id = record.data["visit_id"]
        after, sent = intake.take_up(known.get(visit_id), record, ctx.roster, ctx.cases.codes)
        appended = [r for item in sent for r in self._send(log, item, ctx)]
        if after is not None:
            known[visit_id] = after
        return appended

    @staticmethod
    def _forget(log: EventLog, subject: str) -> list[Record]:
        """The resident forgotten in the cases log too, once: a marker there means done."""
        stream = f"subject-{subject}"
        if log.read_stream(stream):
            return []
        log.forget(subject, actor=intake.INTAKE.actor)
        return log.read_stream(stream)

    @staticmethod
    def _send(log: EventLog, item: intake.Intake, ctx: domain.Context) -> list[Record]:
        return execute(log, domain.stream_for(item.command),
                       lambda history: domain.decide(item.command, history, ctx),
                       command_id=item.command_id, actor=intake.INTAKE.actor,
                       contract=events.SCHEMAS)


class Kept(DependencyProvider):
    """State of one running service kept in memory across its workers: made when its
    container starts, so two containers in one process (as in tests) never share it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    def setup(self) -> None:
        self.kept = self.factory()

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.kept


class CasesService(bases.WriteService):
    name = "cases"
    commands = COMMANDS
    contract = events.SCHEMAS

    logs: RemoteLogs = LogReader()
    clock: Clock = ClockProvider()
    book: case_book.CaseBook = Kept(case_book.CaseBook)
    config: dict[str, Any] = Config()
    roster_fold: RemoteRoster = Kept(RemoteRoster)
    visit_intake: VisitIntake = Kept(VisitIntake)

    def context(self, who: Principal, now: datetime,
                page: Sequence[Record] = ()) -> domain.Context:
        """The decisions' context: the roster at the visits log's head, or, for the intake
        taking up `page`, fed from the page itself (at least as new as its records)."""
        if page:
            self.roster_fold.feed(page)
        roster = self.roster_fold.current(self.logs, page[-1].position if page else None)
        return domain.Context(now, who, self.policy, case_policy(), default_calendar(), roster,
                              issued=self.issued)

    def issued(self, resident_id: str) -> bool:
        """Whether the platform issued this resident id and has not forgotten the resident:
        this log holds their key (a case registered them), or the visits log named them
        (taken up to its head first if not yet seen: an id a visit has just issued counts).
        Refused once erased here, which the intake does for every resident visits forgets:
        a resident forgotten in visits is refused from when the intake takes the marker up
        (at once on live delivery, else on the next tick)."""
        known = self._known(resident_id)
        if known is None:
            self.take_up()
            known = self._known(resident_id)
        return bool(known)

    def _known(self, resident_id: str) -> bool | None:
        """True: issued; False: forgotten; None: not known here (yet)."""
        held = self.log.keys.holds(resident_id)
        if held is not None:
            return held
        return True if self.visit_intake.issued(self.log, resident_id) else None

    def decide(self, command: Any, history: list[Record], who: Principal,
               now: datetime) -> list[NewEvent]:
        return domain.decide(command, history, self.context(who, now))

    @every("CASE_TIMER_SECONDS", 60)
    def tick(self) -> int:
        """Time-driven commands due now; returns how many events this tick appended."""
        now = self.clock.now()
        fired = timed.tick(self.log, lambda: self.book.current(self.log).timed(),
                           lambda who: self.context(who, now))
        return len(fired) + self.take_up()

    @event_handler(VISITS, VISIT_RECORDED)
    def on_visit_recorded(self, event: dict[str, Any]) -> None:
        self.take_up(event)

    @event_handler(VISITS, VISIT_CORRECTED)
    def on_visit_corrected(self, event: dict[str, Any]) -> None:
        self.take_up(event)

    @event_handler(VISITS, VISIT_RETRACTED)
    def on_visit_retracted(self, event: dict[str, Any]) -> None:
        self.take_up(event)

    @event_handler(VISITS, intake.FORGETS)
    def on_subject_forgotten(self, event: dict[str, Any]) -> None:
        self.take_up(event)

    def take_up(self, event: dict[str, Any] | None = None) -> int:
        """The cases visits bring, up to `event` (or the visits log's head); returns how many
        events that appended."""
        with bases.database(self.log):
            return len(self.visit_intake.follow(
                self.log, self.logs,
                lambda page: self.context(intake.INTAKE, self.clock.now(), page), event))

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
                   overdue: str | bool | None = None, page: str | int | None = None,
                   page_size: str | int | None = None) -> dict[str, Any]:
        """Cases in id order, personal data withheld (GET /cases/{id} shows it to whom it may)."""
        self.trust.verify(principal, "list_cases", [unit_id, state, overdue, page, page_size])
        given = {"unit_id": unit_id, "state": state, "overdue": overdue, "page": page,
                 "page_size": page_size}  # as the gateway passes them: strings, None if absent
        query = load(schemas.CaseQuerySchema, {k: v for k, v in given.items() if v is not None})
        unit, wanted, late = query.get("unit_id"), query.get("state"), query.get("overdue")
        number, size = query["page"], query["page_size"]
        found, total = self.book.current(self.log).page(unit, wanted, late,
                                                        (number - 1) * size, size)
        cases = [domain.read_back(c, self.policy, False) for c in found]
        return schemas.CaseListSchema().dump({"cases": cases, "page": number,
                                              "page_size": size, "total": total})

    # -- Open311 GeoReport v2 (the gateway serves it under /open311/v2/) ------------------

    def site(self) -> open311.Site:
        return site.site(self.config, self.policy, case_policy(),
                         self.roster_fold.current(self.logs).units)

    @rpc
    def open311_read(self, resource: str, params: dict[str, str],
                     case_id: str | None = None) -> dict[str, Any]:
        """Public: `discovery`, `services`, `requests` or one `request`, as a site.answer."""
        with bases.database(self.log):
            here = self.site()
            if resource == "discovery":
                return site.answer(lambda: open311.discovery(here, params))
            if resource == "services":
                return site.answer(lambda: open311.services(here, params))
            index = self.book.current(self.log)
            if resource == "request":
                return site.answer(lambda: open311.request(index.get(case_id or ""),
                                                           case_id or "", params, here))
            return site.answer(lambda: open311.requests(index, params, here, datetime.now(UTC)))

    @rpc
    def open311_post(self, principal: Any, form: dict[str, str]) -> dict[str, Any]:
        """A POSTed request registered as a hotline case, decided like POST /cases (operators
        and hotline staff), by the principal the gateway signed."""
        who = self.trust.verify(principal, "open311_post", [form])
        here = self.site()

        def register() -> open311.Document:
            command = open311.intake(form, str(uuid.uuid4()), here)
            with bases.database(self.log), Spares(self.log, type(command)) as spares:
                command = dataclasses.replace(command, **spares.values)
                execute(self.log, domain.stream_for(command),
                        lambda history: self.decide(command, history, who, datetime.now(UTC)),
                        command_id=None, actor=who.actor, contract=events.SCHEMAS,
                        spares=spares)
            return open311.accepted(command, here)

        return site.answer(register, 201)
