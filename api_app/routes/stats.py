"""GET /stats: per queue, completed and failed per minute over the last hour, wait and run
latency percentiles over the last five minutes, and the oldest waiting job's age (viewer)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.contract.bodies import Stats
from api_app.contract.meta import documented
from api_app.errors import api_view, json_response
from common.models import StatsQuery
from common.services import Services

# For GET /openapi.json (api_app/contract).
_STATS = documented(
    "Outcomes per minute (last hour), latency percentiles (last 5 minutes), oldest waiting job",
    {200: Stats},
    query=StatsQuery,
)


def stats_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)

    @bp.route("/stats", methods=["GET"])
    @_STATS
    @api_view
    def get_stats() -> Any:
        query = StatsQuery.model_validate(dict(bp.current_request.query_params or {}))
        figures = Stats.model_validate(services.store.stats(query.queue))
        return json_response(figures.model_dump(mode="json"))

    return bp
