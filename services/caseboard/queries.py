"""The case board declared once: the query it answers over HTTP (the gateway serves it and
documents it in OpenAPI from this table). Who may read which unit is the compliance view's
rule, checked at the edge the same way."""

from __future__ import annotations

from services.caseboard.schemas import CaseBoardQuerySchema, CaseBoardSchema
from shared.runtime.declare import Route

ROUTES: tuple[Route, ...] = (
    Route("case_board", "GET", "/case-board",
          "Monthly case board per unit: received, on time, overdue, resolved, closed, parked "
          "and the hotline's rates",
          "operator, supervisor, auditor any unit; head and cadre: their own unit (the "
          "default); as_of: supervisor and auditor only", "cases", service="caseboard",
          call="report", response=CaseBoardSchema, query=CaseBoardQuerySchema),
)
