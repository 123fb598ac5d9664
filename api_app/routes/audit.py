"""GET /audit: the audit log, newest first, a page at a time (admin)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.contract.meta import documented
from api_app.errors import api_view, json_response
from common.audit import AuditPage, AuditQuery
from common.services import Services
from common.store.audited import audit_page

# For GET /openapi.json (api_app/contract).
_LIST = documented(
    "The audit log of admin actions, newest first, a page at a time",
    {200: AuditPage},
    query=AuditQuery,
)


def audit_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)

    @bp.route("/audit", methods=["GET"])
    @_LIST
    @api_view
    def list_audit() -> Any:
        query = AuditQuery.model_validate(dict(bp.current_request.query_params or {}))
        with services.store.connection() as conn:
            page = audit_page(conn, query)
        return json_response(page.model_dump(mode="json"))

    return bp
