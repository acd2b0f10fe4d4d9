"""The compliance view: per cadre and unit per month, did they spend enough days at the
grassroots? A projection of the visits log, fed live from the bus and caught up over RPC
(shared/runtime/bases.ViewService: delivery, catch-up, status, rebuild); here, its report."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from services.compliance import projection, schemas
from shared.kernel.commands import load
from shared.kernel.projection import Projector
from shared.runtime import bases
from shared.runtime.providers import ProjectorProvider


class ComplianceService(bases.ViewService):
    name = "compliance"

    view: Projector = ProjectorProvider(projection.ComplianceProjection())

    @rpc
    def report(self, month: str, unit_id: str | None = None,
               as_of: str | None = None) -> dict[str, Any]:
        query = load(schemas.ComplianceQuerySchema,
                     {k: v for k, v in (("month", month), ("unit_id", unit_id),
                                        ("as_of", as_of)) if v is not None})
        view, at = self.view, None
        if query["as_of"] is not None:  # facts are kept by position: a query, not a refold
            at = view.position_at(self.logs, "visits", query["as_of"])
        with view.engine.connect() as conn:
            result = projection.report(conn, query["month"], self.policy, query["unit_id"], at)
        checkpoints = view.checkpoints() if at is None else {"visits": at}
        result.update(as_of=query["as_of"], checkpoints=checkpoints)
        return schemas.ComplianceReportSchema().dump(result)
