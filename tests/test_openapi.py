"""GET /openapi.json: the document is made from the routes, so it lists exactly the routes the
app has, is valid OpenAPI 3.1, answers without Postgres, and the API's real answers fit it.
Then the defects fuzzing the document found, each pinned (tests/test_schemathesis.py fuzzes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from chalice.app import Blueprint
from chalice.test import Client
from openapi_spec_validator import OpenAPIV31SpecValidator

from api_app.contract.document import UndocumentedRoute, openapi_document
from api_app.factory import create_app
from common.limits import BIGINT
from common.services import Services
from common.settings import Settings
from tests.conftest import post_json
from tests.keys import PEPPER

Document = dict[str, Any]


@pytest.fixture
def document(client: Client) -> Document:
    response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert _content_type(response) == "application/json"
    return dict(json.loads(response.body))


def _content_type(response: Any) -> str:
    return str({k.lower(): v for k, v in response.headers.items()}["content-type"])


def _answer(response: Any) -> tuple[int, Any]:
    return response.status_code, json.loads(response.body)


def assert_fits(document: Document, path: str, method: str, response: Any) -> Any:
    """The response's status is documented for the route, and its body fits that schema."""
    status, body = _answer(response)
    answers = document["paths"][path][method]["responses"]
    assert str(status) in answers, f"{method} {path} answered {status}, not in {list(answers)}"
    assert _content_type(response) == "application/json"
    schema = answers[str(status)]["content"]["application/json"]["schema"]
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.validate(
        body,
        {**schema, "components": document["components"]},
        cls=jsonschema.Draft202012Validator,
        format_checker=checker,
    )
    return body


# --- the document ---------------------------------------------------------------------------


def test_every_route_is_documented_and_nothing_else(services: Services, document: Document) -> None:
    app = create_app(services)  # as the client's app: the routes are the same
    routes = {(path, m.lower()) for path, methods in app.routes.items() for m in methods}
    documented = {(path, m) for path, ops in document["paths"].items() for m in ops}
    assert routes == documented
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            parameters = document["paths"][path][method.lower()]["parameters"]
            in_path = [p["name"] for p in parameters if p["in"] == "path"]
            assert in_path == entry.view_args, (method, path)


def test_it_is_valid_openapi_3_1(document: Document) -> None:
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()


def test_bounds_come_from_the_models(document: Document) -> None:
    raw_id = document["paths"]["/jobs/{raw_id}"]["get"]["parameters"][0]["schema"]
    assert raw_id == {"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT}
    query = {p["name"]: p for p in document["paths"]["/jobs"]["get"]["parameters"]}
    assert query["limit"]["schema"]["minimum"] == 1 and query["limit"]["schema"]["maximum"] == 500
    assert query["ids"]["schema"]["items"]["maximum"] == BIGINT
    assert (query["ids"]["style"], query["ids"]["explode"]) == ("form", False)
    body = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/JobSubmission"}
    priority = document["components"]["schemas"]["JobSubmission"]["properties"]["priority"]
    assert (priority["type"], priority["maximum"]) == ("integer", 1000)


def test_errors_are_documented_where_they_can_happen(document: Document) -> None:
    def statuses(path: str, method: str) -> set[int]:
        return {int(s) for s in document["paths"][path][method]["responses"]}

    # Every route but the public ones (api_app/auth/roles.py): the key's refusals, its rate
    # limit, and 503 when the limit cannot be read (Redis down, for every role but admin).
    keyed = {401, 403, 429, 503}
    assert statuses("/jobs", "post") == {200, 201, 400, 409, 411, 413, 415, 422, 503} | keyed
    assert statuses("/jobs/{raw_id}", "get") == {200, 404, 422, 503} | keyed
    assert statuses("/queues", "get") == {200, 503} | keyed
    assert statuses("/openapi.json", "get") == {200}
    error = document["paths"]["/jobs/{raw_id}"]["get"]["responses"]["404"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "Retry-After" in document["paths"]["/queues"]["get"]["responses"]["503"]["headers"]
    assert "Retry-After" in document["paths"]["/me"]["get"]["responses"]["429"]["headers"]


def test_a_route_without_its_contract_is_refused() -> None:
    app = create_app(_unreachable_services())
    bp = Blueprint(__name__)

    @bp.route("/undocumented", methods=["GET"])
    def undocumented() -> Any:
        return {}

    app.register_blueprint(bp)
    with pytest.raises(UndocumentedRoute, match="GET /undocumented"):
        openapi_document(app)


def _unreachable_services() -> Services:
    return Services.connect(
        Settings(
            database_url="postgresql://postgres@127.0.0.1:1/nowhere",
            redis_url="redis://127.0.0.1:1/0",
            redis_prefix="djstestnowhere",
            key_pepper=PEPPER,
        )
    )


@pytest.fixture
def unreachable() -> Iterator[Services]:
    services = _unreachable_services()
    yield services
    services.close()


def test_it_is_served_while_postgres_and_redis_are_down(unreachable: Services) -> None:
    with Client(create_app(unreachable)) as test_client:
        assert test_client.http.get("/health").status_code == 503
        response = test_client.http.get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body)["paths"]["/jobs"]["post"]["operationId"] == "post_job"


# --- real answers fit it --------------------------------------------------------------------


def test_real_answers_fit_the_document(client: Client, document: Document) -> None:
    def fits(path: str, method: str, response: Any) -> Any:
        return assert_fits(document, path, method, response)

    job = fits("/jobs", "post", post_json(client, "/jobs", {"type": "echo", "priority": 5}))
    replay = {"type": "echo", "idempotency_key": "k1"}
    fits("/jobs", "post", post_json(client, "/jobs", replay))
    assert fits("/jobs", "post", post_json(client, "/jobs", replay))["created"] is False
    fits("/jobs", "post", post_json(client, "/jobs", {**replay, "priority": 1}))  # 409
    fits("/jobs/batch", "post", post_json(client, "/jobs/batch", {"jobs": [{"type": "echo"}]}))
    fits("/jobs/{raw_id}", "get", client.http.get(f"/jobs/{job['id']}"))
    fits("/jobs/{raw_id}", "get", client.http.get("/jobs/999999"))  # 404
    fits("/jobs/{raw_id}", "get", client.http.get("/jobs/abc"))  # 422
    fits("/jobs", "get", client.http.get("/jobs?limit=1&queue=default"))
    fits("/jobs/{raw_id}/promote", "post", post_json(client, f"/jobs/{job['id']}/promote", {}))
    fits("/jobs/{raw_id}/cancel", "post", post_json(client, f"/jobs/{job['id']}/cancel", {}))
    fits("/jobs/retry", "post", post_json(client, "/jobs/retry", {"filter": {"queue": "default"}}))
    fits("/jobs/redrive", "post", post_json(client, "/jobs/redrive", {}))
    settings = {"remove_on_complete": {"age_s": 60}}
    fits("/queues/{name}/settings", "put", _put(client, "/queues/default/settings", settings))
    fits("/queues/{name}/pause", "post", post_json(client, "/queues/default/pause", {}))
    fits("/queues", "get", client.http.get("/queues"))
    clean = {"status": "cancelled", "keep": 0}
    assert fits("/queues/{name}/clean", "post", post_json(client, "/queues/x/clean", clean)) == {
        "removed": 0
    }
    fits("/jobs/{raw_id}", "delete", client.http.delete(f"/jobs/{job['id']}"))
    fits("/jobs", "post", client.http.post("/jobs", headers={"content-type": "text/plain"}))
    fits("/health", "get", client.http.get("/health"))


def _put(client: Client, path: str, body: Any) -> Any:
    headers = {"content-type": "application/json"}
    return client.http.put(path, headers=headers, body=json.dumps(body))


# --- defects the fuzzing found, pinned ------------------------------------------------------


def _refused(response: Any, path: str) -> None:
    status, body = _answer(response)
    assert status == 422, body
    assert [d["path"] for d in body["error"]["details"]] == [path], body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backoff", {"jitter": True}),  # a bool was read as a number: 1.0
        ("timeout_s", True),
        ("run_at", 0),  # a number was read as Unix seconds
        ("run_at", "0"),
        ("run_at", "2030-01-01 00:00:00Z"),  # not RFC 3339: a space for the T
        ("run_at", "2030-01-01T00:00Z"),  # nor without seconds
    ],
)
def test_a_body_value_of_the_wrong_type_is_refused(client: Client, field: str, value: Any) -> None:
    response = post_json(client, "/jobs", {"type": "echo", field: value})
    path = "backoff.jitter" if field == "backoff" else field
    _refused(response, path)


@pytest.mark.parametrize(
    ("job_filter", "path"),
    [
        ({"ids": [True]}, "filter.ids.0"),  # a bool, a float or digits were read as an id
        ({"ids": [5.0]}, "filter.ids.0"),
        ({"ids": ["5"]}, "filter.ids.0"),
        ({"ids": [0]}, "filter.ids.0"),
        ({"created_before": 0}, "filter.created_before"),
    ],
)
def test_a_filter_takes_ids_and_times_of_their_own_type_only(
    client: Client, job_filter: dict[str, Any], path: str
) -> None:
    for verb in ("retry", "promote", "cancel", "remove", "redrive"):
        _refused(post_json(client, f"/jobs/{verb}", {"filter": job_filter}), path)


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("limit=5.0", "limit"),  # int() of the text took these
        ("limit=%2B5", "limit"),
        ("limit=%205", "limit"),
        ("limit=5_0", "limit"),
        ("cursor=true", "cursor"),
        ("ids=1,5.0", "ids.1"),
        ("ids=1,99999999999999999999", "ids.1"),
        ("created_before=0.5", "created_before"),  # read as Unix seconds
    ],
)
def test_a_query_integer_or_time_is_exactly_that(client: Client, query: str, path: str) -> None:
    _refused(client.http.get(f"/jobs?{query}"), path)


def test_query_integers_and_times_in_their_own_form_are_taken(client: Client) -> None:
    post_json(client, "/jobs", {"type": "echo"})
    query = "limit=5&cursor=9223372036854775807&ids=1,2&created_after=2020-01-01T00:00:00%2B01:00"
    status, body = _answer(client.http.get(f"/jobs?{query}"))
    assert status == 200 and [j["id"] for j in body["jobs"]] == [1]


def test_an_empty_idempotency_key_header_is_refused_not_ignored(client: Client) -> None:
    response = post_json(client, "/jobs", {"type": "echo"}, **{"Idempotency-Key": ""})
    _refused(response, "idempotency_key")
