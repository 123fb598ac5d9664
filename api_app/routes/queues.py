"""Routes for /queues: counts per state per queue."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.errors import api_view, json_response
from common.models import JOB_STATUSES
from common.services import Services


def queues_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)

    @bp.route("/queues", methods=["GET"])
    @api_view
    def list_queues() -> Any:
        counts = services.store.queue_counts()
        queues = [
            {"name": name, "counts": {s: by_status.get(s, 0) for s in JOB_STATUSES}}
            for name, by_status in sorted(counts.items())
        ]
        return json_response({"queues": queues})

    return bp
