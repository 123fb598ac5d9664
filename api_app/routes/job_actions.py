"""Routes for one job's admin verbs: retry, promote, cancel, remove."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from api_app.actor import actor
from api_app.contract.bodies import RemovedJob
from api_app.contract.meta import documented
from api_app.errors import ANY_TYPE, api_view, job_id, json_response
from common.models import JobDetail
from common.services import Services


def _job(job: JobDetail, status: int = 200) -> Response:
    return json_response(job.model_dump(mode="json"), status)


# What each route takes and answers, for GET /openapi.json (api_app/contract).
_ERRORS = {
    404: "No job has this id.",
    409: "The job is in a state the verb cannot apply to, or its row stayed locked.",
}
_RETRY = documented("Retry one job", {200: JobDetail}, errors=_ERRORS)
_PROMOTE = documented("Promote one delayed job", {200: JobDetail}, errors=_ERRORS)
_CANCEL = documented(
    "Cancel one job (202: an active job is asked to stop)",
    {200: JobDetail, 202: JobDetail},
    errors=_ERRORS,
)
_REMOVE = documented("Remove one job", {200: RemovedJob}, errors=_ERRORS)


def job_action_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    manager = services.manager

    @bp.route("/jobs/{raw_id}/retry", methods=["POST"], content_types=ANY_TYPE)
    @_RETRY
    @api_view
    def retry_job(raw_id: str) -> Any:
        return _job(manager.retry_one(job_id(raw_id), actor(bp.current_request)))

    @bp.route("/jobs/{raw_id}/promote", methods=["POST"], content_types=ANY_TYPE)
    @_PROMOTE
    @api_view
    def promote_job(raw_id: str) -> Any:
        return _job(manager.promote_one(job_id(raw_id), actor(bp.current_request)))

    @bp.route("/jobs/{raw_id}/cancel", methods=["POST"], content_types=ANY_TYPE)
    @_CANCEL
    @api_view
    def cancel_job(raw_id: str) -> Any:
        cancelled = manager.cancel_one(job_id(raw_id), actor(bp.current_request))
        # An active job stops only when its handler does: 202 says the request is accepted.
        return _job(cancelled.job, 202 if cancelled.requested else 200)

    @bp.route("/jobs/{raw_id}", methods=["DELETE"])
    @_REMOVE
    @api_view
    def remove_job(raw_id: str) -> Any:
        ident = job_id(raw_id)
        manager.remove_one(ident, actor(bp.current_request))
        return json_response({"removed": ident})

    return bp
