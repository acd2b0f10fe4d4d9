"""The visits service: the roster and cadres' visits, recorded in its own event log.

Entrypoints only: each RPC checks the principal the gateway signed for exactly this call
(shared/runtime/trust.py), loads its command with the schemas, decides it with the pure domain
(which refuses what the principal may not do, in the same decision), and appends through the
shared service layer. The relay publishes what is appended.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from nameko.rpc import rpc

from services.visits import domain, rights, schemas
from shared.campaign.policy import Policy
from shared.eventlog import EventLog, NewEvent
from shared.kernel.commands import MemoryFold, execute, load
from shared.kernel.errors import Denied, NotFound, UnknownReference
from shared.runtime.auth import Principal
from shared.runtime.providers import (
    EventStore,
    Fold,
    PolicyProvider,
    TrustProvider,
    log_status,
    read_log,
)
from shared.runtime.trust import Signer

# Visit ids made from a keyed request's command id, so its retries get the same id back.
_IDS = uuid.UUID("0f9c6a52-3d4b-4c59-9a4e-5b7f2e8d1c33")


class VisitsService:
    name = "visits"

    log: EventLog = EventStore()
    policy: Policy = PolicyProvider()
    roster: MemoryFold[domain.Roster] = Fold(domain.Roster, domain.Roster.apply)
    trust: Signer = TrustProvider()

    def _decide(self, method: str, principal: Any, command_type: type, payload: Any,
                command_id: str | None, *ids: str) -> dict[str, Any]:
        who = self.trust.verify(principal, method, [*ids, payload, command_id])
        return self._run(who, command_type, payload, command_id, *ids)

    def _run(self, who: Principal, command_type: type, payload: Any, command_id: str | None,
             *ids: str) -> dict[str, Any]:
        fields = dict(zip(_ID_FIELDS[command_type], ids, strict=True))
        command = command_type(**fields, **load(schemas.COMMAND_SCHEMAS[command_type], payload))
        self._check_resident(command)
        stream = domain.stream_for(command)
        records = execute(
            self.log, stream,
            lambda history: domain.decide(command, history, self.roster.current(self.log),
                                          datetime.now(UTC), self.policy, principal=who),
            command_id=command_id, actor=who.actor, contract=schemas.EVENT_SCHEMAS,
        )
        last = records[-1] if records else self.log.read_stream(stream)[-1]
        reply = {"id": stream.split("-", 1)[1], "position": last.position}
        if "backfilled" in last.data:
            reply["backfilled"] = last.data["backfilled"]
        if last.type == domain.VISIT_RECORDED:
            reply["resident_id"] = last.data["target"]["resident_id"]
            reply["pending_cadre_ids"] = last.data.get("pending_cadre_ids", [])
        return reply

    def _check_resident(self, command: Any) -> None:
        """A resident id a client passes must be one this service issued (it holds a live key
        for it), so that an id can never be something a client made up, like a phone number."""
        target = getattr(command, "target", None)
        if target is None and isinstance(command, domain.CorrectVisit):
            target = command.changes.get("target")
        given = (target or {}).get("resident_id")
        if given and self.log.keys.keys([given]).get(given) is None:
            raise UnknownReference("resident", given, "target.resident.id")

    @rpc
    def register_unit(self, principal: Any, payload: Any,
                      command_id: str | None = None) -> dict[str, Any]:
        return self._decide("register_unit", principal, domain.RegisterUnit, payload, command_id)

    @rpc
    def set_unit_day(self, principal: Any, unit_id: str, payload: Any,
                     command_id: str | None = None) -> dict[str, Any]:
        return self._decide("set_unit_day", principal, domain.SetUnitDay, payload, command_id,
                            unit_id)

    @rpc
    def enrol_cadre(self, principal: Any, payload: Any,
                    command_id: str | None = None) -> dict[str, Any]:
        return self._decide("enrol_cadre", principal, domain.EnrolCadre, payload, command_id)

    @rpc
    def transfer_cadre(self, principal: Any, cadre_id: str, payload: Any,
                       command_id: str | None = None) -> dict[str, Any]:
        return self._decide("transfer_cadre", principal, domain.TransferCadre, payload,
                            command_id, cadre_id)

    @rpc
    def grant_leave(self, principal: Any, cadre_id: str, payload: Any,
                    command_id: str | None = None) -> dict[str, Any]:
        return self._decide("grant_leave", principal, domain.GrantLeave, payload, command_id,
                            cadre_id)

    @rpc
    def remove_cadre(self, principal: Any, cadre_id: str, payload: Any,
                     command_id: str | None = None) -> dict[str, Any]:
        return self._decide("remove_cadre", principal, domain.RemoveCadre, payload, command_id,
                            cadre_id)

    @rpc
    def record_visit(self, principal: Any, payload: Any,
                     command_id: str | None = None) -> dict[str, Any]:
        """A visit sent without `id` gets one: from the command id when the request carried an
        Idempotency-Key (its retries share the command id, so they land on the same visit),
        else a fresh one, so two unkeyed requests with the same content are two visits."""
        who = self.trust.verify(principal, "record_visit", [payload, command_id])
        if isinstance(payload, dict) and not payload.get("id"):
            new_id = uuid.uuid5(_IDS, command_id) if command_id else uuid.uuid4()
            payload = {**payload, "id": str(new_id)}
        return self._run(who, domain.RecordVisit, payload, command_id)

    @rpc
    def correct_visit(self, principal: Any, visit_id: str, payload: Any,
                      command_id: str | None = None) -> dict[str, Any]:
        return self._decide("correct_visit", principal, domain.CorrectVisit, payload,
                            command_id, visit_id)

    @rpc
    def retract_visit(self, principal: Any, visit_id: str, payload: Any,
                      command_id: str | None = None) -> dict[str, Any]:
        return self._decide("retract_visit", principal, domain.RetractVisit, payload,
                            command_id, visit_id)

    @rpc
    def confirm_participation(self, principal: Any, visit_id: str, payload: Any,
                              command_id: str | None = None) -> dict[str, Any]:
        return self._decide("confirm_participation", principal, domain.ConfirmParticipation,
                            payload, command_id, visit_id)

    @rpc
    def withdraw_participation(self, principal: Any, visit_id: str, payload: Any,
                               command_id: str | None = None) -> dict[str, Any]:
        return self._decide("withdraw_participation", principal, domain.WithdrawParticipation,
                            payload, command_id, visit_id)

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
        event = NewEvent(domain.PERSONAL_DATA_DISCLOSED, data)
        execute(self.log, f"disclosure-{visit_id}", lambda _history: [event], command_id=None,
                actor=who.actor, contract=schemas.EVENT_SCHEMAS)

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

    @rpc
    def read_log(self, after: int = 0, limit: int = 500,
                 until: str | None = None) -> list[dict[str, Any]]:
        return read_log(self.log, after, limit, until)

    @rpc
    def status(self) -> dict[str, Any]:
        return log_status(self.log)


# The ids a command takes from the URL (RPC arguments before the payload), in order.
_ID_FIELDS: dict[type, tuple[str, ...]] = {
    domain.RegisterUnit: (), domain.EnrolCadre: (), domain.RecordVisit: (),
    domain.SetUnitDay: ("unit_id",), domain.TransferCadre: ("cadre_id",),
    domain.GrantLeave: ("cadre_id",), domain.RemoveCadre: ("cadre_id",),
    domain.CorrectVisit: ("visit_id",), domain.RetractVisit: ("visit_id",),
    domain.ConfirmParticipation: ("visit_id",), domain.WithdrawParticipation: ("visit_id",),
}
