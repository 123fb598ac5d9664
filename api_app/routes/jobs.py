"""Routes for /jobs: submit (one or a batch), list, inspect, and the admin verbs."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, TypeVar

from chalice.app import Blueprint

from api_app.auth.identity import caller, owner_scope
from api_app.contract.bodies import JobPage, SubmittedBatch, SubmittedJob
from api_app.contract.meta import IDEMPOTENCY_HEADER, documented
from api_app.errors import ANY_TYPE, api_view, job_id, json_body, json_response
from common.errors import InvalidInput, NotFound
from common.manager import Submitted
from common.models import BatchSubmission, JobDetail, JobOut, JobSubmission, ListQuery
from common.redact import redact, sensitive_names
from common.services import Services
from common.store.listing import Page, cursor_of

JobOutT = TypeVar("JobOutT", bound=JobOut)


def _submission(request: Any) -> JobSubmission:
    body = json_body(request)
    header_key = request.headers.get("idempotency-key")
    # An empty header is a key that is not valid (422), not an absent one.
    if header_key is not None and isinstance(body, dict):
        if body.get("idempotency_key", header_key) != header_key:
            raise InvalidInput(
                "the Idempotency-Key header and the idempotency_key field differ",
                [{"path": "idempotency_key", "message": "differs from the header"}],
            )
        body = {**body, "idempotency_key": header_key}
    return JobSubmission.model_validate(body)


def _submitted(s: Submitted) -> dict[str, Any]:
    # The model's fields as they are: json_response writes them (fastjson.dumps_answer).
    return {**s.job.__dict__, "created": s.created, "dispatched": s.dispatched}


def _redacted(job: JobOutT, sensitive: frozenset[str]) -> JobOutT:
    """The job with its payload's and result's sensitive fields redacted (common/redact.py),
    for every caller, admins too: the dashboard and the API never show them. A job with
    nothing to redact is not copied."""
    payload, result = redact(job.payload, sensitive), redact(job.result, sensitive)
    if payload is job.payload and result is job.result:
        return job
    return job.model_copy(update={"payload": payload, "result": result})


def _as_seen(job: JobDetail, owner: int | None, sensitive: frozenset[str]) -> dict[str, Any]:
    """A job's JSON, redacted; a submitter (owner set) is not shown workers nor tracebacks."""
    shown = _redacted(job, sensitive).model_dump(mode="json")
    if owner is not None:
        shown["worker"] = None
        for attempt in shown["history"]:
            attempt["worker"] = attempt["traceback"] = None
    return shown


def _list_page(services: Services, request: Any, sensitive: frozenset[str]) -> str:
    params = dict(request.query_params or {})
    if "ids" in params:
        params["ids"] = params["ids"].split(",")
    query = ListQuery.model_validate(params)
    budget = services.settings.list_max_bytes
    owner = owner_scope(caller(request))
    page = services.store.list_within(query, budget, owner)
    if sensitive:
        page = replace(page, jobs=[_redacted(job, sensitive) for job in page.jobs])
    if owner is not None:  # a submitter is not shown workers
        page = replace(page, jobs=[job.model_copy(update={"worker": None}) for job in page.jobs])
    return _page_body(page, query, budget)


def _page_body(page: Page, query: ListQuery, max_bytes: int) -> str:
    """A page of GET /jobs as JSON: its jobs until their JSON reaches max_bytes (at least
    one), and the cursor to go on from the last one shown when more may follow (or from
    the last job a text search looked at, when it found fewer than a page)."""
    shown: list[bytes] = []
    size = 0
    cut = False
    for job in page.jobs:  # the store counted the large fields; this counts every byte sent
        if shown and size >= max_bytes:
            cut = True
            break
        shown.append(JobOut.__pydantic_serializer__.to_json(job))
        size += len(shown[-1])
    next_cursor = page.next_cursor if not cut else None
    if next_cursor is None and shown and (cut or page.more):  # a full page is `more` too
        last = page.jobs[len(shown) - 1]
        next_cursor = cursor_of(query.sort, last.id, last.priority)
    return f'{{"jobs":[{b",".join(shown).decode()}],"next_cursor":{json.dumps(next_cursor)}}}'


# What each route takes and answers, for GET /openapi.json (api_app/contract).
_SUBMIT = documented(
    "Submit a job (200: an idempotent replay)",
    {200: SubmittedJob, 201: SubmittedJob},
    body=JobSubmission,
    headers=IDEMPOTENCY_HEADER,
    errors={409: "The idempotency key was used with another body."},
)
_SUBMIT_BATCH = documented(
    "Submit up to 1,000 jobs, all or none",
    {200: SubmittedBatch, 201: SubmittedBatch},
    body=BatchSubmission,
    errors={409: "An idempotency key was used with another body."},
)
_LIST = documented(
    "List and search jobs, newest, oldest or highest priority first, a page at a time",
    {200: JobPage},
    query=ListQuery,
)
_GET = documented(
    "One job with its history and events", {200: JobDetail}, errors={404: "No job has this id."}
)


def jobs_routes(services: Services) -> Blueprint:
    bp = Blueprint(__name__)
    store = services.store
    sensitive = sensitive_names(services.settings.sensitive_fields)

    @bp.route("/jobs", methods=["POST"], content_types=ANY_TYPE)
    @_SUBMIT
    @api_view
    def post_job() -> Any:
        request = bp.current_request
        job = _submission(request).owned_by(caller(request).key_id)
        [submitted] = services.batcher.submit([job])
        status = 201 if submitted.created else 200
        location = {"Location": f"/jobs/{submitted.job.id}"}
        return json_response(_submitted(submitted), status, location)

    @bp.route("/jobs/batch", methods=["POST"], content_types=ANY_TYPE)
    @_SUBMIT_BATCH
    @api_view
    def post_batch() -> Any:
        batch = BatchSubmission.model_validate(json_body(bp.current_request))
        owner = caller(bp.current_request).key_id
        submitted = services.batcher.submit([job.owned_by(owner) for job in batch.jobs])
        created = sum(s.created for s in submitted)
        body = {"jobs": [_submitted(s) for s in submitted], "created": created}
        return json_response(body, 201 if created else 200)

    @bp.route("/jobs", methods=["GET"])
    @_LIST
    @api_view
    def list_jobs() -> Any:
        return json_response(_list_page(services, bp.current_request, sensitive))

    @bp.route("/jobs/{raw_id}", methods=["GET"])
    @_GET
    @api_view
    def get_job(raw_id: str) -> Any:
        # Another key's job is not found, for a submitter: not even its existence shows.
        owner = owner_scope(caller(bp.current_request))
        job = store.get(job_id(raw_id), owner)
        if job is None:
            raise NotFound(f"job {raw_id} not found", {"id": int(raw_id)})
        return json_response(_as_seen(job, owner, sensitive))

    return bp
