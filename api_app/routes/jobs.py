"""Routes for /jobs: submit, list, inspect."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.errors import api_view, job_id, json_body, json_response
from common.errors import NotFound
from common.jobs import submit
from common.models import JobSubmission, ListQuery
from common.services import Services

# Chalice answers an unknown content type with its own 415 body; accept all, check in json_body.
ANY_TYPE = ["*/*"]


def jobs_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)

    @bp.route("/jobs", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def post_job() -> Any:
        submission = JobSubmission.model_validate(json_body(bp.current_request))
        submitted = submit(services.store, services.queue, submission)
        body = {**submitted.job.model_dump(mode="json"), "dispatched": submitted.dispatched}
        return json_response(body, 201, {"Location": f"/jobs/{submitted.job.id}"})

    @bp.route("/jobs", methods=["GET"])
    @api_view
    def list_jobs() -> Any:
        query = ListQuery.model_validate(bp.current_request.query_params or {})
        jobs = services.store.list_jobs(query)
        next_cursor = jobs[-1].id if len(jobs) == query.limit else None
        return json_response(
            {"jobs": [j.model_dump(mode="json") for j in jobs], "next_cursor": next_cursor}
        )

    @bp.route("/jobs/{raw_id}", methods=["GET"])
    @api_view
    def get_job(raw_id: str) -> Any:
        job = services.store.get(job_id(raw_id))
        if job is None:
            raise NotFound(f"job {raw_id} not found", {"id": int(raw_id)})
        return json_response(job.model_dump(mode="json"))

    return bp
