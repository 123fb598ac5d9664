"""Routes for the bulk admin verbs, each applied to the jobs a filter names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint

from api_app.errors import api_view, json_body, json_response
from api_app.routes.jobs import ANY_TYPE
from common import jobs
from common.models import BulkRequest, JobFilter, RedriveRequest
from common.redisqueue import RedisQueue
from common.services import Services
from common.store import Store


def bulk_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    store, queue = services.store, services.queue

    def _bulk() -> BulkRequest:
        return BulkRequest.model_validate(json_body(bp.current_request))

    def _apply(verb: Callable[[Store, RedisQueue, JobFilter, int], list[int]], done: str) -> Any:
        request = _bulk()
        ids = verb(store, queue, request.filter, request.limit)
        return json_response({done: len(ids), "ids": ids})

    @bp.route("/jobs/retry", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def bulk_retry() -> Any:
        return _apply(jobs.retry, "retried")

    @bp.route("/jobs/promote", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def bulk_promote() -> Any:
        return _apply(jobs.promote, "promoted")

    @bp.route("/jobs/cancel", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def bulk_cancel() -> Any:
        request = _bulk()
        cancelled, requested = jobs.cancel(store, queue, request.filter, request.limit)
        body = {"cancelled": len(cancelled), "ids": cancelled, "cancel_requested": requested}
        return json_response(body)

    @bp.route("/jobs/remove", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def bulk_remove() -> Any:
        return _apply(jobs.remove, "removed")

    @bp.route("/jobs/redrive", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def redrive() -> Any:
        request = RedriveRequest.model_validate(json_body(bp.current_request))
        ids, more = jobs.redrive(store, queue, request)
        return json_response({"retried": len(ids), "ids": ids, "more": more})

    return bp
