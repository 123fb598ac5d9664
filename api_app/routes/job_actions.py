"""Routes for one job's admin verbs: retry, promote, cancel, remove."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.errors import api_view, job_id, json_response
from api_app.routes.jobs import ANY_TYPE
from common import jobs
from common.models import JobFilter
from common.services import Services


def job_action_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    store, queue = services.store, services.queue

    def _current(ident: int, status: int = 200) -> Any:
        return json_response(store.get(ident).model_dump(mode="json"), status)  # type: ignore[union-attr]

    @bp.route("/jobs/{raw_id}/retry", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def retry_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        moved = jobs.retry(store, queue, JobFilter(ids=[ident]), 1)
        jobs.one(store, ident, "retry", moved, "failed, cancelled or completed jobs")
        return _current(ident)

    @bp.route("/jobs/{raw_id}/promote", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def promote_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        moved = jobs.promote(store, queue, JobFilter(ids=[ident]), 1)
        jobs.one(store, ident, "promote", moved, "delayed jobs")
        return _current(ident)

    @bp.route("/jobs/{raw_id}/cancel", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def cancel_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        cancelled, requested = jobs.cancel(store, queue, JobFilter(ids=[ident]), 1)
        jobs.one(store, ident, "cancel", cancelled + requested, "pending, delayed or active jobs")
        # An active job stops only when its handler does: 202 says the request is accepted.
        return _current(ident, 202 if requested else 200)

    @bp.route("/jobs/{raw_id}", methods=["DELETE"])
    @api_view
    def remove_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        removed = jobs.remove(store, queue, JobFilter(ids=[ident]), 1)
        jobs.one(store, ident, "remove", removed, "jobs that are not active")
        return json_response({"removed": ident})

    return bp
