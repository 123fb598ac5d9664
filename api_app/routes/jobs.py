"""Routes for /jobs: submit (one or a batch), list, inspect, and the admin verbs."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from api_app.errors import ANY_TYPE, api_view, job_id, json_body, json_response
from common.errors import InvalidInput, NotFound
from common.manager import Submitted
from common.models import BatchSubmission, JobSubmission, ListQuery
from common.services import Services


def _submission(request: Any) -> JobSubmission:
    body = json_body(request)
    header_key = request.headers.get("idempotency-key")
    if header_key and isinstance(body, dict):
        if body.get("idempotency_key", header_key) != header_key:
            raise InvalidInput(
                "the Idempotency-Key header and the idempotency_key field differ",
                [{"path": "idempotency_key", "message": "differs from the header"}],
            )
        body = {**body, "idempotency_key": header_key}
    return JobSubmission.model_validate(body)


def _submitted(s: Submitted) -> dict[str, Any]:
    return {**s.job.model_dump(mode="json"), "created": s.created, "dispatched": s.dispatched}


def jobs_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    store = services.store

    @bp.route("/jobs", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def post_job() -> Any:
        [submitted] = services.batcher.submit([_submission(bp.current_request)])
        status = 201 if submitted.created else 200
        location = {"Location": f"/jobs/{submitted.job.id}"}
        return json_response(_submitted(submitted), status, location)

    @bp.route("/jobs/batch", methods=["POST"], content_types=ANY_TYPE)
    @api_view
    def post_batch() -> Any:
        batch = BatchSubmission.model_validate(json_body(bp.current_request))
        submitted = services.batcher.submit(batch.jobs)
        created = sum(s.created for s in submitted)
        body = {"jobs": [_submitted(s) for s in submitted], "created": created}
        return json_response(body, 201 if created else 200)

    @bp.route("/jobs", methods=["GET"])
    @api_view
    def list_jobs() -> Any:
        params = dict(bp.current_request.query_params or {})
        if "ids" in params:
            params["ids"] = params["ids"].split(",")
        query = ListQuery.model_validate(params)
        found = store.list_jobs(query)
        next_cursor = found[-1].id if len(found) == query.limit else None
        return json_response(
            {"jobs": [j.model_dump(mode="json") for j in found], "next_cursor": next_cursor}
        )

    @bp.route("/jobs/{raw_id}", methods=["GET"])
    @api_view
    def get_job(raw_id: str) -> Any:
        job = store.get(job_id(raw_id))
        if job is None:
            raise NotFound(f"job {raw_id} not found", {"id": int(raw_id)})
        return json_response(job.model_dump(mode="json"))

    return bp
