"""The case board: per unit and month, how the cases handed to units are faring. A projection
of the cases log, fed live from the bus and caught up over RPC (shared/runtime/bases.ViewService:
delivery, catch-up, status, rebuild); here, its one query."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from services.caseboard import projection, schemas
from shared.kernel.commands import load
from shared.kernel.projection import Projector
from shared.runtime import bases
from shared.runtime.providers import ProjectorProvider

SOURCE = "cases"


class CaseBoardService(bases.ViewService):
    name = "caseboard"

    view: Projector = ProjectorProvider(projection.CaseBoardProjection())

    @rpc
    def report(self, month: str, unit_id: str | None = None,
               as_of: str | None = None) -> dict[str, Any]:
        given = {"month": month, "unit_id": unit_id, "as_of": as_of}
        query = load(schemas.CaseBoardQuerySchema,
                     {k: v for k, v in given.items() if v is not None})
        at = None  # facts are kept by position: as of an instant is a query, not a refold
        if query["as_of"] is not None:
            at = self.view.position_at(self.logs, SOURCE, query["as_of"])
        with self.view.engine.connect() as conn:
            board = projection.report(conn, query["month"], self.policy, query["unit_id"], at)
        board["as_of"] = query["as_of"]
        board["checkpoints"] = self.view.checkpoints() if at is None else {SOURCE: at}
        return schemas.CaseBoardSchema().dump(board)
