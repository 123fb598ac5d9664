"""Routes for /queues/{name}/alerts: a queue's alert hook (common/upkeep/alerts.py sends)."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.actor import actor
from api_app.contract.bodies import AlertRemoved, QueueAlert
from api_app.contract.meta import documented
from api_app.errors import ANY_TYPE, api_view, json_body, json_response
from api_app.routes.queues import queue_name
from common import alert_hooks
from common.alerts import AlertSettings
from common.services import Services

_GET = documented("A queue's alert hook", {200: QueueAlert})
_PUT = documented(
    "Set a queue's alert hook: a POST on failures, schedule lag, no runners",
    {200: QueueAlert},
    body=AlertSettings,
)
_DELETE = documented("Remove a queue's alert hook", {200: AlertRemoved})


def _alert(name: str, row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"queue": name, "alert": None}
    fields = ("url", "lag_threshold_s", "min_interval_s")
    return {"queue": name, "alert": {k: row[k] for k in fields}}


def alerts_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    store = services.store

    @bp.route("/queues/{name}/alerts", methods=["GET"])
    @_GET
    @api_view
    def get_alert(name: str) -> Any:
        return json_response(_alert(name, alert_hooks.get_alert(store, queue_name(name))))

    @bp.route("/queues/{name}/alerts", methods=["PUT"], content_types=ANY_TYPE)
    @_PUT
    @api_view
    def put_alert(name: str) -> Any:
        settings = AlertSettings.model_validate(json_body(bp.current_request))
        row = alert_hooks.set_alert(store, queue_name(name), settings, actor(bp.current_request))
        return json_response(_alert(name, row))

    @bp.route("/queues/{name}/alerts", methods=["DELETE"], content_types=ANY_TYPE)
    @_DELETE
    @api_view
    def delete_alert(name: str) -> Any:
        removed = alert_hooks.remove_alert(store, queue_name(name), actor(bp.current_request))
        return json_response({"queue": name, "removed": removed})

    return bp
