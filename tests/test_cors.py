"""CORS: none by default; with DJS_CORS_ORIGINS, a preflight answer and the CORS headers for
an allowed origin only, the same through chalice.test and a real `djs api`."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
from chalice.test import Client

from api_app.cors import parse_origins
from api_app.factory import create_app
from common.services import Services
from common.settings import Settings
from tests.keys import bearer, keyed, make_key
from tests.test_http_front import start_front

DASHBOARD = "https://dash.example.com"
PREFLIGHT = {
    "origin": DASHBOARD,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type",
}


@pytest.fixture
def cors_client(settings: Settings, admin_key: str) -> Iterator[Client]:
    origins = f"{DASHBOARD}, http://localhost:5173"
    services = Services.connect(settings.model_copy(update={"cors_origins": origins}))
    try:
        with keyed(Client(create_app(services)), admin_key) as client:
            yield client
    finally:
        services.close()


def _cors(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control")}


def test_no_cors_headers_by_default(client: Client) -> None:
    answer = client.http.get("/jobs", headers={"origin": DASHBOARD})
    assert answer.status_code == 200 and _cors(answer.headers) == {}
    # No OPTIONS route either: `chalice local` (and so `djs api`) answers a preflight itself
    # with `Access-Control-Allow-Methods: OPTIONS` and no Allow-Origin, which a browser
    # refuses; API Gateway answers 403.
    assert all("OPTIONS" not in methods for methods in client._app.routes.values())


def test_a_preflight_from_an_allowed_origin(cors_client: Client) -> None:
    answer = cors_client.http.request("OPTIONS", "/jobs/{raw_id}/retry".replace("{raw_id}", "7"))
    assert answer.status_code == 204 and _cors(answer.headers) == {}  # no Origin: not CORS
    answer = cors_client.http.request(
        "OPTIONS", "/jobs", headers={**PREFLIGHT, "authorization": ""}
    )
    assert answer.status_code == 204
    assert _cors(answer.headers) == {
        "access-control-allow-origin": DASHBOARD,
        "access-control-allow-methods": "GET, OPTIONS, POST",
        "access-control-allow-headers": "Authorization, Content-Type, Idempotency-Key",
        "access-control-max-age": "600",
        "access-control-expose-headers": "Location, Retry-After",
    }
    assert answer.headers["Vary"] == "Origin"
    assert "access-control-allow-credentials" not in _cors(answer.headers)


def test_answers_to_an_allowed_origin_name_it(cors_client: Client) -> None:
    answer = cors_client.http.get("/jobs", headers={"origin": "http://localhost:5173"})
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert answer.headers["Vary"] == "Origin"
    refused = cors_client.http.get("/jobs", headers={"origin": DASHBOARD, **bearer("nope")})
    assert refused.status_code == 401  # the authorizer's refusal, before any middleware


def test_a_disallowed_origin_gets_no_cors_header(cors_client: Client) -> None:
    evil = {**PREFLIGHT, "origin": "https://evil.example.com"}
    preflight = cors_client.http.request("OPTIONS", "/jobs", headers=evil)
    assert preflight.status_code == 204 and _cors(preflight.headers) == {}
    answer = cors_client.http.get("/jobs", headers={"origin": "https://evil.example.com"})
    assert _cors(answer.headers) == {} and answer.headers["Vary"] == "Origin"


def test_origins_are_checked_at_start_up() -> None:
    assert parse_origins(" https://A.example.com/ ,http://x:8080") == {
        "https://a.example.com",
        "http://x:8080",
    }
    assert parse_origins("") == frozenset()
    for bad in ("*", "dash.example.com", "https://x/path", "ftp://x"):
        with pytest.raises(ValueError):
            parse_origins(bad)


def test_the_real_front_answers_preflights_the_same(env: dict[str, str], admin_key: str) -> None:
    front = start_front({**env, "DJS_CORS_ORIGINS": DASHBOARD})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        conn.request("OPTIONS", "/queues/mail/pause", headers=PREFLIGHT)
        preflight = conn.getresponse()
        preflight.read()
        conn.request("GET", "/queues", headers={"origin": DASHBOARD, **bearer(admin_key)})
        answer = conn.getresponse()
        answer.read()
        conn.close()
    finally:
        front.stop()
    assert preflight.status == 204
    assert preflight.getheader("access-control-allow-origin") == DASHBOARD
    assert preflight.getheader("access-control-allow-methods") == "OPTIONS, POST"
    assert answer.status == 200
    assert answer.getheader("access-control-allow-origin") == DASHBOARD


def test_the_real_fronts_refusals_carry_cors_headers_too(
    env: dict[str, str], admin_key: str, database_url: str
) -> None:
    # A 401/403 comes from the authorizer, before the app's CORS middleware: a dashboard on
    # another origin must still read it (to send its user back to sign in).
    viewer = make_key(database_url, "viewer")
    front = start_front({**env, "DJS_CORS_ORIGINS": DASHBOARD})
    asked = [
        ({"origin": DASHBOARD}, "GET", "/queues"),
        ({"origin": DASHBOARD, **bearer("djs_unknown_" + "x" * 43)}, "GET", "/queues"),
        ({"origin": DASHBOARD, **bearer(viewer)}, "GET", "/keys"),
        ({"origin": "https://evil.example.com"}, "GET", "/queues"),
    ]
    answers = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        for headers, method, path in asked:
            conn.request(method, path, headers=headers)
            answer = conn.getresponse()
            answer.read()
            answers.append((answer.status, answer.getheader("access-control-allow-origin")))
        conn.close()
    finally:
        front.stop()
    assert answers == [(401, DASHBOARD), (401, DASHBOARD), (403, DASHBOARD), (401, None)]
