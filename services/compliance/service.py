"""The compliance view: per cadre and unit per month, did they spend enough days at the
grassroots? A projection of the visits log, fed live from the bus and caught up over RPC."""

from __future__ import annotations

import os
from typing import Any

import eventlet
from nameko.events import event_handler
from nameko.rpc import rpc
from nameko.timer import timer

from services.compliance import projection, schemas
from shared.campaign.policy import Policy
from shared.kernel.commands import load
from shared.kernel.projection import Projector, build_as_of
from shared.runtime.providers import (
    LogReader,
    PolicyProvider,
    ProjectorProvider,
    RemoteLogs,
    deliver,
    view_status,
)

CATCH_UP_SECONDS = float(os.environ.get("CATCH_UP_SECONDS", "30"))


class ComplianceService:
    name = "compliance"

    view: Projector = ProjectorProvider(projection.ComplianceProjection())
    policy: Policy = PolicyProvider()
    logs: RemoteLogs = LogReader()

    @event_handler("visits", "#")
    def on_visits_event(self, event: dict[str, Any]) -> None:
        deliver(self.view, event, self.logs)

    @timer(interval=CATCH_UP_SECONDS, eager=True)
    def catch_up(self) -> None:
        """On start and now and then: fold whatever the bus did not bring."""
        self.view.catch_up(self.logs)

    @rpc
    def report(self, month: str, unit_id: str | None = None,
               as_of: str | None = None) -> dict[str, Any]:
        query = load(schemas.ComplianceQuerySchema,
                     {k: v for k, v in (("month", month), ("unit_id", unit_id),
                                        ("as_of", as_of)) if v is not None})
        view = self.view
        if query["as_of"] is not None:
            view = build_as_of(view.projection, self.logs, query["as_of"])
        with view.engine.connect() as conn:
            result = projection.report(conn, query["month"], self.policy, query["unit_id"])
        result.update(as_of=query["as_of"], checkpoints=view.checkpoints())
        return schemas.ComplianceReportSchema().dump(result)

    @rpc
    def status(self) -> dict[str, Any]:
        return view_status(self.view, self.logs.head)

    @rpc
    def rebuild(self) -> dict[str, Any]:
        """Drop the view and fold the logs again from the start (in the background)."""
        self.view.rebuilding = True  # seen by the next status() call, before the work starts
        eventlet.spawn_n(self.view.rebuild, self.logs)
        return {"rebuilding": True}
