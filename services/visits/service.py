"""The visits service: the roster and cadres' visits, recorded in its own event log.

Entrypoints only: each RPC loads its command with the schemas, decides it with the pure
domain, and appends through the shared service layer. The relay publishes what is appended.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from nameko.rpc import rpc

from services.visits import domain, schemas
from shared.commands import MemoryFold, execute, load
from shared.errors import NotFound
from shared.eventlog import EventLog
from shared.policy import Policy
from shared.providers import EventStore, Fold, PolicyProvider, log_status, read_log

# Visit ids made from a request's idempotency key, so a retry gets the same id back.
_IDS = uuid.UUID("0f9c6a52-3d4b-4c59-9a4e-5b7f2e8d1c33")


class VisitsService:
    name = "visits"

    log: EventLog = EventStore()
    policy: Policy = PolicyProvider()
    roster: MemoryFold[domain.Roster] = Fold(domain.Roster, domain.Roster.apply)

    def _decide(self, command_type: type, payload: Any, actor: str | None,
                command_id: str | None, **ids: Any) -> dict[str, Any]:
        command = command_type(**ids, **load(schemas.COMMAND_SCHEMAS[command_type], payload))
        stream = domain.stream_for(command)
        records = execute(
            self.log, stream,
            lambda history: domain.decide(command, history, self.roster.current(self.log),
                                          datetime.now(UTC), self.policy),
            command_id=command_id, actor=actor, contract=schemas.EVENT_SCHEMAS,
        )
        last = records[-1] if records else self.log.read_stream(stream)[-1]
        reply = {"id": stream.split("-", 1)[1], "position": last.position}
        if "backfilled" in last.data:
            reply["backfilled"] = last.data["backfilled"]
        return reply

    @rpc
    def register_unit(self, payload: Any, actor: str | None = None,
                      command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.RegisterUnit, payload, actor, command_id)

    @rpc
    def set_unit_day(self, unit_id: str, payload: Any, actor: str | None = None,
                     command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.SetUnitDay, payload, actor, command_id, unit_id=unit_id)

    @rpc
    def enrol_cadre(self, payload: Any, actor: str | None = None,
                    command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.EnrolCadre, payload, actor, command_id)

    @rpc
    def transfer_cadre(self, cadre_id: str, payload: Any, actor: str | None = None,
                       command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.TransferCadre, payload, actor, command_id, cadre_id=cadre_id)

    @rpc
    def grant_leave(self, cadre_id: str, payload: Any, actor: str | None = None,
                    command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.GrantLeave, payload, actor, command_id, cadre_id=cadre_id)

    @rpc
    def remove_cadre(self, cadre_id: str, payload: Any, actor: str | None = None,
                     command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.RemoveCadre, payload, actor, command_id, cadre_id=cadre_id)

    @rpc
    def record_visit(self, payload: Any, actor: str | None = None,
                     command_id: str | None = None) -> dict[str, Any]:
        if isinstance(payload, dict) and not payload.get("id") and command_id:
            payload = {**payload, "id": str(uuid.uuid5(_IDS, command_id))}
        return self._decide(domain.RecordVisit, payload, actor, command_id)

    @rpc
    def correct_visit(self, visit_id: str, payload: Any, actor: str | None = None,
                      command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.CorrectVisit, payload, actor, command_id, visit_id=visit_id)

    @rpc
    def retract_visit(self, visit_id: str, payload: Any, actor: str | None = None,
                      command_id: str | None = None) -> dict[str, Any]:
        return self._decide(domain.RetractVisit, payload, actor, command_id, visit_id=visit_id)

    @rpc
    def get_visit(self, visit_id: str) -> dict[str, Any]:
        state = domain.fold_visit(self.log.read_stream(f"visit-{visit_id}"))
        if state is None:
            raise NotFound("visit", visit_id)
        return schemas.VisitSchema().dump(domain.read_back(state))

    @rpc
    def get_cadre(self, cadre_id: str) -> dict[str, Any]:
        cadre = self.roster.current(self.log).cadres.get(cadre_id)
        if cadre is None:
            raise NotFound("cadre", cadre_id)
        return schemas.CadreSchema().dump({
            "id": cadre.cadre_id, "name": cadre.name, "unit_id": cadre.unit_id,
            "role": cadre.role, "liaison_unit_ids": cadre.liaison_unit_ids,
            "left": cadre.left_from is not None})

    @rpc
    def forget_resident(self, resident_id: str, actor: str | None = None) -> dict[str, Any]:
        """Erase a resident's personal data everywhere in the log (their key is destroyed)."""
        return {"resident_id": resident_id, "erased": self.log.forget(resident_id, actor=actor)}

    @rpc
    def read_log(self, after: int = 0, limit: int = 500,
                 until: str | None = None) -> list[dict[str, Any]]:
        return read_log(self.log, after, limit, until)

    @rpc
    def status(self) -> dict[str, Any]:
        return log_status(self.log)
