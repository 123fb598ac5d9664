"""Routes for /queues: counts per state, pause/resume, retention settings, clean."""

from __future__ import annotations

import re
from typing import Any

from chalice.app import Blueprint

from api_app.actor import actor
from api_app.auth.identity import caller, owner_scope
from api_app.contract.bodies import Cleaned, Paused, QueueList, QueueRow
from api_app.contract.meta import documented
from api_app.errors import ANY_TYPE, api_view, json_body, json_response
from common.errors import InvalidInput
from common.models import JOB_STATUSES, NAME_PATTERN, CleanRequest, QueueSettings
from common.services import Services
from common.store import Store


def queue_name(raw: str) -> str:
    if not re.match(NAME_PATTERN, raw):
        raise InvalidInput("not a valid queue name", [{"path": "name", "message": raw}])
    return raw


def _describe(
    name: str,
    counts: dict[str, int],
    settings: dict[str, Any],
    runners: int,
    oldest: float | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "counts": {s: counts.get(s, 0) for s in JOB_STATUSES},
        "runners": runners,
        "oldest_waiting_s": oldest,
        "paused": bool(settings.get("paused", False)),
        "remove_on_complete": settings.get("remove_on_complete"),
        "remove_on_fail": settings.get("remove_on_fail"),
    }


def _queue_list(store: Store, owner: int | None) -> dict[str, Any]:
    """GET /queues: every queue with jobs or settings, each with its counts and runners."""
    seen = store.queue_overview(owner)
    return {
        "queues": [
            _describe(
                n,
                seen.counts.get(n, {}),
                seen.settings.get(n, {}),
                seen.runners(n),
                seen.oldest_waiting_s.get(n),
            )
            for n in seen.names
        ]
    }


# What each route takes and answers, for GET /openapi.json (api_app/contract).
_LIST = documented("Every queue: counts per state, pause, retention", {200: QueueList})
_PAUSE = documented("Pause a queue: its jobs are not claimed", {200: Paused})
_RESUME = documented("Resume a paused queue", {200: Paused})
_SETTINGS = documented("Set a queue's retention", {200: QueueRow}, body=QueueSettings)
_CLEAN = documented(
    "Remove finished jobs by age or beyond the newest N", {200: Cleaned}, body=CleanRequest
)


def queues_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    store, manager = services.store, services.manager

    @bp.route("/queues", methods=["GET"])
    @_LIST
    @api_view
    def list_queues() -> Any:
        return json_response(_queue_list(store, owner_scope(caller(bp.current_request))))

    @bp.route("/queues/{name}/pause", methods=["POST"], content_types=ANY_TYPE)
    @_PAUSE
    @api_view
    def pause(name: str) -> Any:
        manager.pause(queue_name(name), True, actor(bp.current_request))
        return json_response({"name": name, "paused": True})

    @bp.route("/queues/{name}/resume", methods=["POST"], content_types=ANY_TYPE)
    @_RESUME
    @api_view
    def resume(name: str) -> Any:
        manager.pause(queue_name(name), False, actor(bp.current_request))
        return json_response({"name": name, "paused": False})

    @bp.route("/queues/{name}/settings", methods=["PUT"], content_types=ANY_TYPE)
    @_SETTINGS
    @api_view
    def put_settings(name: str) -> Any:
        settings = QueueSettings.model_validate(json_body(bp.current_request))
        row = manager.set_retention(queue_name(name), settings, actor(bp.current_request))
        return json_response(row)

    @bp.route("/queues/{name}/clean", methods=["POST"], content_types=ANY_TYPE)
    @_CLEAN
    @api_view
    def clean(name: str) -> Any:
        request = CleanRequest.model_validate(json_body(bp.current_request))
        removed = manager.clean(queue_name(name), request, actor(bp.current_request))
        return json_response({"removed": removed})

    return bp
