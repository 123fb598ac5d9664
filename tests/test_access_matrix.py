"""The whole access matrix: every route and method of the app x every role, and x a request
without a key, with a malformed, an unknown and a revoked key, against a job that belongs to
another key. Each cell's status is written down here, not derived from api_app/auth/roles.py:
a route added without a row of its own fails the test."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chalice.app import Chalice
from chalice.test import Client

from api_app.factory import create_app
from common.services import Services
from common.store.keys import revoke_key
from tests.keys import UNKNOWN_KEY, bearer, keyed, make_key

ROLES = ("submitter", "viewer", "operator", "admin", "metrics")

# (method, route) -> the status for a submitter, viewer, operator, admin and metrics key.
# The job in a path belongs to another submitter key: a submitter does not even learn that it
# exists. A metrics key (a scraper's) may call GET /metrics and nothing else.
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("POST", "/jobs"): (201, 201, 201, 201, 403),
    ("POST", "/jobs/batch"): (201, 201, 201, 201, 403),
    ("GET", "/jobs"): (200, 200, 200, 200, 403),
    ("GET", "/jobs/{raw_id}"): (404, 200, 200, 200, 403),
    ("GET", "/queues"): (200, 200, 200, 200, 403),
    ("GET", "/me"): (200, 200, 200, 200, 403),
    ("GET", "/workers"): (403, 200, 200, 200, 403),
    ("GET", "/stats"): (403, 200, 200, 200, 403),
    ("POST", "/jobs/{raw_id}/retry"): (403, 403, 200, 200, 403),
    ("POST", "/jobs/{raw_id}/promote"): (403, 403, 200, 200, 403),
    ("POST", "/jobs/{raw_id}/cancel"): (403, 403, 200, 200, 403),
    ("POST", "/jobs/retry"): (403, 403, 200, 200, 403),
    ("POST", "/jobs/promote"): (403, 403, 200, 200, 403),
    ("POST", "/jobs/cancel"): (403, 403, 200, 200, 403),
    ("POST", "/jobs/redrive"): (403, 403, 200, 200, 403),
    ("POST", "/queues/{name}/pause"): (403, 403, 200, 200, 403),
    ("POST", "/queues/{name}/resume"): (403, 403, 200, 200, 403),
    ("DELETE", "/jobs/{raw_id}"): (403, 403, 403, 200, 403),
    ("POST", "/jobs/remove"): (403, 403, 403, 200, 403),
    ("PUT", "/queues/{name}/settings"): (403, 403, 403, 200, 403),
    ("GET", "/queues/{name}/alerts"): (403, 403, 403, 200, 403),
    ("PUT", "/queues/{name}/alerts"): (403, 403, 403, 200, 403),
    ("DELETE", "/queues/{name}/alerts"): (403, 403, 403, 200, 403),
    ("POST", "/queues/{name}/clean"): (403, 403, 403, 200, 403),
    ("POST", "/keys"): (403, 403, 403, 201, 403),
    ("GET", "/keys"): (403, 403, 403, 200, 403),
    ("DELETE", "/keys/{key_id}"): (403, 403, 403, 200, 403),
    ("GET", "/audit"): (403, 403, 403, 200, 403),
    ("GET", "/metrics"): (403, 403, 403, 200, 200),
}
# Answered without a key, whatever key is sent (health: Postgres and Redis are up).
PUBLIC = {
    ("GET", "/health"): 200,
    ("GET", "/ready"): 200,  # a migrated database, Postgres and Redis up
    ("GET", "/openapi.json"): 200,
    ("GET", "/admin/queues"): 200,  # the dashboard's page and files hold no data
    ("GET", "/admin/queues/assets/{asset}"): 200,
}

A_FILTER = {"filter": {"queue": "matrix"}, "limit": 10}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/jobs"): {"type": "echo", "queue": "matrix"},
    ("POST", "/jobs/batch"): {"jobs": [{"type": "echo", "queue": "matrix"}]},
    ("POST", "/jobs/retry"): A_FILTER,
    ("POST", "/jobs/promote"): A_FILTER,
    ("POST", "/jobs/cancel"): A_FILTER,
    ("POST", "/jobs/remove"): A_FILTER,
    ("POST", "/jobs/redrive"): {"filter": {"queue": "matrix"}},
    ("PUT", "/queues/{name}/settings"): {"remove_on_complete": {"count": 10}},
    ("PUT", "/queues/{name}/alerts"): {"url": "https://alerts.example/hook"},
    ("POST", "/queues/{name}/clean"): {"status": "completed", "age_s": 0},
}
# The state the other key's job must be in for the verb to apply (200, not 409).
JOB_STATE = {"retry": "cancelled", "promote": "delayed"}

Send = Callable[[str | None, str, str], Any]


class Fixture:
    """An app, a key per role, the other key whose jobs the paths name."""

    def __init__(self, services: Services, app: Chalice) -> None:
        self.services = services
        self.client = keyed(Client(app), None)
        url = services.settings.database_url
        self.keys = {role: make_key(url, role) for role in ROLES}
        self.other = make_key(url, "submitter", "the-other-submitter")

    def request(
        self, key: str | None, method: str, path: str, body: Any = None, auth: str | None = None
    ) -> Any:
        headers = {"content-type": "application/json"}
        if auth is not None:
            headers["authorization"] = auth
        elif key is not None:
            headers |= bearer(key)
        raw = json.dumps(body).encode() if body is not None else b""
        return self.client.http.request(method, path, headers=headers, body=raw)

    def other_job(self, state: str = "pending") -> int:
        body = {"type": "echo", "queue": "matrix"}
        if state == "delayed":
            body["delay_ms"] = 3_600_000
        answer = self.request(self.other, "POST", "/jobs", body)
        assert answer.status_code == 201, answer.body
        ident = int(json.loads(answer.body)["id"])
        if state == "cancelled":
            self.services.manager.cancel_one(ident)
        return ident

    def concrete(self, method: str, route: str) -> str:
        """The route with its variables filled: a fresh job of the other key, a queue, a
        fresh key to revoke."""
        if "{raw_id}" in route:
            verb = route.rsplit("/", 1)[-1]
            return route.replace("{raw_id}", str(self.other_job(JOB_STATE.get(verb, "pending"))))
        if "{key_id}" in route:
            answer = self.request(self.keys["admin"], "POST", "/keys", _new_key_body("viewer"))
            return route.replace("{key_id}", str(json.loads(answer.body)["id"]))
        return route.replace("{name}", "matrix").replace("{asset}", "app.js")


_counter = itertools.count()


def _new_key_body(role: str) -> dict[str, str]:
    return {"name": f"made-{next(_counter)}", "role": role}


def _body(method: str, route: str) -> Any:
    if (method, route) == ("POST", "/keys"):
        return _new_key_body("submitter")
    return BODIES.get((method, route))


@pytest.fixture
def matrix(services: Services) -> Iterator[Fixture]:
    app = create_app(services)
    fixture = Fixture(services, app)
    yield fixture
    fixture.client.__exit__(None, None, None)


def _routes(fixture: Fixture) -> list[tuple[str, str]]:
    app = fixture.client._app
    return [(m, path) for path, methods in app.routes.items() for m in methods]


def test_every_route_has_a_row_and_nothing_else(matrix: Fixture) -> None:
    assert set(_routes(matrix)) == set(EXPECTED) | set(PUBLIC)


def test_every_role_gets_the_status_written_for_it(matrix: Fixture) -> None:
    got: dict[tuple[str, str, str], int] = {}
    want: dict[tuple[str, str, str], int] = {}
    for method, route in _routes(matrix):
        if (method, route) in PUBLIC:
            continue
        for role, status in zip(ROLES, EXPECTED[(method, route)], strict=True):
            path = matrix.concrete(method, route)
            answer = matrix.request(matrix.keys[role], method, path, _body(method, route))
            got[(method, route, role)] = answer.status_code
            want[(method, route, role)] = status
            if answer.status_code in (401, 403, 404):
                _assert_error_shape(answer)
    assert got == want


def _refusals(fixture: Fixture) -> dict[str, dict[str, Any]]:
    revoked = make_key(fixture.services.settings.database_url, "admin", "revoked-admin")
    with fixture.services.store.connection() as conn:
        revoke_key(conn, "revoked-admin")
    return {
        "no key": {},
        "not bearer": {"auth": f"Basic {fixture.keys['admin']}"},
        "bearer, no key": {"auth": "Bearer "},
        "malformed": {"auth": "Bearer djs_short_key"},
        "truncated": {"auth": f"Bearer {fixture.keys['admin'][:-1]}"},
        "unknown": {"key": UNKNOWN_KEY},
        "revoked": {"key": revoked},
    }


def test_no_malformed_unknown_or_revoked_key_is_401_everywhere(matrix: Fixture) -> None:
    got: dict[tuple[str, str, str], int] = {}
    want: dict[tuple[str, str, str], int] = {}
    for case, how in _refusals(matrix).items():
        for method, route in _routes(matrix):
            path = matrix.concrete(method, route)
            answer = matrix.request(
                how.get("key"), method, path, _body(method, route), auth=how.get("auth")
            )
            got[(method, route, case)] = answer.status_code
            want[(method, route, case)] = PUBLIC.get((method, route), 401)
            if answer.status_code == 401:
                _assert_error_shape(answer, "unauthorized")
                assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert got == want


def _assert_error_shape(answer: Any, code: str | None = None) -> None:
    assert answer.headers["Content-Type"] == "application/json", answer.headers
    error = json.loads(answer.body)["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code, error


def test_the_document_says_which_routes_need_a_key_and_which_role(matrix: Fixture) -> None:
    document = json.loads(matrix.client.http.get("/openapi.json").body)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for (method, route), statuses in EXPECTED.items():
        operation = document["paths"][route][method.lower()]
        least = next(role for role, s in zip(ROLES, statuses, strict=True) if s < 400)
        if statuses[0] == 404:  # a submitter may call it, for its own jobs
            least = "submitter"
        if statuses[-1] < 400:  # a scrape key's route: no other role of the ladder but admin
            least = "metrics"
        assert operation["security"] == [{"bearer": []}], (method, route)
        assert operation["x-djs-role"] == least, (method, route)
        assert {"401", "403"} <= set(operation["responses"]), (method, route)
    for method, route in PUBLIC:
        assert document["paths"][route][method.lower()]["security"] == []
