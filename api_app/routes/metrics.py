"""GET /metrics (Prometheus text; a `metrics` or `admin` key) and GET /ready (public)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from api_app.contract.bodies import Ready
from api_app.contract.meta import documented
from api_app.errors import RETRY_AFTER_S, json_response
from api_app.routes.admin_site import TextFile
from common import metrics
from common.metrics_queues import QueueCollector
from common.readiness import answer, readiness
from common.services import Services

# For GET /openapi.json (api_app/contract).
_METRICS = documented(
    "Prometheus metrics of the whole API server (every process) and of the queues, in the"
    " text exposition format",
    {200: TextFile},
    media_types=(metrics.CONTENT_TYPE,),
)
_READY = documented(
    "200 when Postgres and Redis answer and every migration is applied; 503 names what is"
    " not ready (a missing migration by its file name)",
    {200: Ready},
)


def metrics_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    queues = QueueCollector(services.store)

    @bp.route("/metrics", methods=["GET"])
    @_METRICS
    def scrape() -> Any:
        text = metrics.exposition([queues]).decode()
        return Response(body=text, status_code=200, headers={"Content-Type": metrics.CONTENT_TYPE})

    @bp.route("/ready", methods=["GET"])
    @_READY
    def ready() -> Any:
        status, body = answer(readiness(services))
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return json_response(body, status, headers)

    return bp
