"""Routes for the bulk admin verbs, each applied to the jobs a filter names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint

from api_app.actor import actor
from api_app.contract.bodies import Cancelled, Promoted, Redriven, Removed, Retried
from api_app.contract.meta import documented
from api_app.errors import ANY_TYPE, api_view, json_body, json_response
from common.audit import Actor
from common.models import BulkRequest, JobFilter, RedriveRequest
from common.services import Services

# What each route takes and answers, for GET /openapi.json (api_app/contract).
_MOVING = {
    path: documented(
        f"{path.capitalize()} the jobs a filter names", {200: answer}, body=BulkRequest
    )
    for path, answer in (("retry", Retried), ("promote", Promoted), ("remove", Removed))
}
_CANCEL = documented("Cancel the jobs a filter names", {200: Cancelled}, body=BulkRequest)
_REDRIVE = documented(
    "Retry failed jobs by filter, a page at a time", {200: Redriven}, body=RedriveRequest
)


def bulk_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    manager = services.manager

    def _bulk() -> BulkRequest:
        return BulkRequest.model_validate(json_body(bp.current_request))

    def _moving(verb: Callable[[JobFilter, int, Actor], list[int]], done: str) -> Callable[[], Any]:
        def route() -> Any:
            request = _bulk()
            ids = verb(request.filter, request.limit, actor(bp.current_request))
            return json_response({done: len(ids), "ids": ids})

        return route

    for path, verb, done in (
        ("retry", manager.retry, "retried"),
        ("promote", manager.promote, "promoted"),
        ("remove", manager.remove, "removed"),
    ):
        name = f"bulk_{path}"
        route = _MOVING[path](api_view(_moving(verb, done)))
        route.__name__ = name
        bp.route(f"/jobs/{path}", methods=["POST"], content_types=ANY_TYPE, name=name)(route)

    @bp.route("/jobs/cancel", methods=["POST"], content_types=ANY_TYPE)
    @_CANCEL
    @api_view
    def bulk_cancel() -> Any:
        request, who = _bulk(), actor(bp.current_request)
        cancelled, requested = manager.cancel(request.filter, request.limit, who)
        body = {"cancelled": len(cancelled), "ids": cancelled, "cancel_requested": requested}
        return json_response(body)

    @bp.route("/jobs/redrive", methods=["POST"], content_types=ANY_TYPE)
    @_REDRIVE
    @api_view
    def redrive() -> Any:
        request = RedriveRequest.model_validate(json_body(bp.current_request))
        done = manager.redrive(request, actor(bp.current_request))
        body = {
            "retried": len(done.ids),
            "ids": done.ids,
            "next_cursor": done.next_cursor,
            "remaining": done.remaining,
            "more": done.remaining > 0,
        }
        return json_response(body)

    return bp
