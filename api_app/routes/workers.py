"""GET /workers: the live runners, oldest first (viewer: worker names are viewer information)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.contract.bodies import WorkerList
from api_app.contract.meta import documented
from api_app.errors import api_view, json_response
from common import limits
from common.services import Services
from common.store.runners import live_runners

# For GET /openapi.json (api_app/contract).
_LIST = documented(
    f"The live runners (last beat within two of their intervals), oldest first, at most "
    f"{limits.MAX_RUNNERS_LISTED}",
    {200: WorkerList},
)


def workers_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)

    @bp.route("/workers", methods=["GET"])
    @_LIST
    @api_view
    def list_workers() -> Any:
        with services.store.connection() as conn:
            rows = live_runners(conn, limits.MAX_RUNNERS_LISTED)
        return json_response({"workers": rows})

    return bp
