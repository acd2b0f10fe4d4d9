"""The visits service: the roster and cadres' visits, recorded in its own event log.

Entrypoints only. The commands' RPCs are generated from the command table (commands.py) by
shared/runtime/bases.WriteService, which checks the principal the gateway signed for exactly
the call (shared/runtime/trust.py), loads the command with its schema, decides it here with the
pure domain (which refuses what the principal may not do, in the same decision), and appends
through the shared service layer; it also gives `read_log` and `status`. The relay publishes
what is appended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nameko.rpc import rpc

from services.visits import domain, events, reminders, rights, schemas
from services.visits.commands import COMMANDS
from shared.eventlog import NewEvent, Record
from shared.kernel.commands import MemoryFold, execute, load
from shared.kernel.errors import Denied, NotFound, UnknownReference
from shared.kernel.timed import Clock
from shared.runtime import bases
from shared.runtime.auth import Principal
from shared.runtime.providers import Fold
from shared.runtime.timed import ClockProvider, every


class VisitsService(bases.WriteService):
    name = "visits"
    commands = COMMANDS
    contract = events.SCHEMAS
    decides_with = "roster"

    roster: MemoryFold[domain.Roster] = Fold(domain.Roster, domain.Roster.apply,
                                             domain.ROSTER_EVENT_TYPES)
    clock: Clock = ClockProvider()
    month_days: MemoryFold[reminders.MonthDays] = Fold(
        reminders.MonthDays, reminders.MonthDays.apply, reminders.EVENT_TYPES)

    @every("REMINDER_SECONDS", 60)
    def remind(self) -> int:
        """Time-driven commands: the reminders due now (every replica ticks; the log keeps
        each reminder to one event). Returns how many events this tick appended."""
        roster = self.roster.current(self.log)
        return len(reminders.remind(self.log, self.month_days, roster, self.clock.now(),
                                    self.policy))

    def decide(self, command: Any, history: list[Record], who: Principal,
               now: datetime) -> list[NewEvent]:
        return domain.decide(command, history, self.roster.current(self.log), now, self.policy,
                             principal=who)

    def reply(self, stream: str, last: Record) -> dict[str, Any]:
        reply = super().reply(stream, last)
        data = last.plain()  # the answer names the resident's id: nothing to decrypt
        if "backfilled" in data:
            reply["backfilled"] = data["backfilled"]
        if last.type == events.VISIT_RECORDED:
            reply["resident_id"] = data["target"]["resident_id"]
            reply["pending_cadre_ids"] = data.get("pending_cadre_ids", [])
        return reply

    def check(self, command: Any) -> None:
        """A resident id a client passes must be one this service issued (it holds a live key
        for it), so that an id can never be something a client made up, like a phone number."""
        target = getattr(command, "target", None)
        if target is None and isinstance(command, domain.CorrectVisit):
            target = command.changes.get("target")
        given = (target or {}).get("resident_id")
        if given and self.log.keys.keys([given]).get(given) is None:
            raise UnknownReference("resident", given, "target.resident.id")

    @rpc
    def get_visit(self, principal: Any, visit_id: str,
                  purpose: str | None = None) -> dict[str, Any]:
        """The visit for this reader: refused to those with no business with it; residents'
        details only to those who need them, or for a purpose that is put on the record."""
        who = self.trust.verify(principal, "get_visit", [visit_id, purpose])
        state = domain.fold_visit(self.log.read_stream(f"visit-{visit_id}"))
        if state is None:
            raise NotFound("visit", visit_id)
        roster = self.roster.current(self.log)
        if not rights.may_read(who, state.values["cadre_ids"], roster, state.day):
            raise Denied(f"{who.role} may not read visit {visit_id}")
        shown = rights.sees_personal_data(who, state.confirmed, roster, state.day, purpose)
        if shown and purpose and state.values["target"].get("resident"):
            self._disclosed(who, visit_id, state.values["target"]["resident_id"], purpose)
        return schemas.VisitSchema().dump(domain.read_back(state, personal=shown))

    def _disclosed(self, who: Principal, visit_id: str, resident_id: str, purpose: str) -> None:
        data = load(schemas.PersonalDataDisclosedData,
                    {"visit_id": visit_id, "resident_id": resident_id, "purpose": purpose})
        event = NewEvent(events.PERSONAL_DATA_DISCLOSED, data)
        execute(self.log, f"disclosure-{visit_id}", lambda _history: [event], command_id=None,
                actor=who.actor, contract=self.contract)

    @rpc
    def get_cadre(self, cadre_id: str) -> dict[str, Any]:
        cadre = self.roster.current(self.log).cadres.get(cadre_id)
        if cadre is None:
            raise NotFound("cadre", cadre_id)
        today = self.policy.local_date(datetime.now(UTC))
        return schemas.CadreSchema().dump({
            "id": cadre.cadre_id, "name": cadre.name,
            "unit_id": cadre.unit_on(today) or cadre.unit_id,  # a transfer counts from its day
            "role": cadre.role, "liaison_unit_ids": cadre.liaison_unit_ids,
            "left": cadre.left_from is not None, "left_from": cadre.left_from})

    @rpc
    def forget_resident(self, principal: Any, resident_id: str) -> dict[str, Any]:
        """Erase a resident's personal data everywhere in the log (their key is destroyed)."""
        who = self.trust.verify(principal, "forget_resident", [resident_id])
        if who.role != "operator":
            raise Denied(f"role {who.role} may not erase residents' data; it needs operator")
        return {"resident_id": resident_id, "erased": self.log.forget(resident_id,
                                                                        actor=who.actor)}
