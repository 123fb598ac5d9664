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
        one = JobFilter(ids=[ident])
        jobs.apply_one(
            store,
            ident,
            "retry",
            ("failed", "cancelled", "completed"),
            lambda: jobs.retry(store, queue, one, 1),
        )
        return _current(ident)

    @bp.route("/jobs/{raw_id}/promote", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def promote_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        one = JobFilter(ids=[ident])
        jobs.apply_one(
            store, ident, "promote", ("delayed",), lambda: jobs.promote(store, queue, one, 1)
        )
        return _current(ident)

    @bp.route("/jobs/{raw_id}/cancel", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def cancel_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        one = JobFilter(ids=[ident])
        requested: list[int] = []

        def cancel() -> list[int]:
            cancelled, asked = jobs.cancel(store, queue, one, 1)
            requested.extend(asked)
            return cancelled + asked

        jobs.apply_one(store, ident, "cancel", ("pending", "delayed", "active"), cancel)
        # An active job stops only when its handler does: 202 says the request is accepted.
        return _current(ident, 202 if requested else 200)

    @bp.route("/jobs/{raw_id}", methods=["DELETE"])
    @api_view
    def remove_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        one = JobFilter(ids=[ident])
        jobs.apply_one(
            store,
            ident,
            "remove",
            ("pending", "delayed", "completed", "failed", "cancelled"),
            lambda: jobs.remove(store, queue, one, 1),
        )
        return json_response({"removed": ident})

    return bp
