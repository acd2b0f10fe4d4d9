"""The compliance view declared once: the queries it answers over HTTP (the gateway serves
them and documents them in OpenAPI from this table)."""

from __future__ import annotations

from services.compliance.schemas import ComplianceQuerySchema, ComplianceReportSchema
from shared.runtime.declare import Route

ROUTES: tuple[Route, ...] = (
    Route("compliance", "GET", "/compliance", "Monthly compliance per cadre and unit",
          "operator, supervisor, auditor any unit; head and cadre: their own unit (the default); "
          "as_of: supervisor and auditor only", "compliance", service="compliance",
          call="report", response=ComplianceReportSchema, query=ComplianceQuerySchema),
)
