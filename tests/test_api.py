"""The HTTP API through chalice.test.Client, on real Postgres and Redis, every error status."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis
from chalice.test import Client

from api_app.factory import create_app
from common.services import Services
from common.settings import Settings
from tests.conftest import post_json
from tests.keys import UNKNOWN_KEY, keyed


def body(response: Any) -> Any:
    return json.loads(response.body)


def test_post_job_answers_201_pending_and_pushes_the_id(client: Client, services: Services) -> None:
    response = post_json(client, "/jobs", {"type": "echo", "payload": {"x": 1}})
    assert response.status_code == 201
    job = body(response)
    assert isinstance(job["id"], int) and job["status"] == "pending"
    assert job["dispatched"] is True
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert services.queue.claim("default", 10).ids == [job["id"]]


def test_get_job_shows_it_with_history(client: Client) -> None:
    job_id = body(post_json(client, "/jobs", {"type": "echo", "queue": "mail"}))["id"]
    response = client.http.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    job = body(response)
    assert (job["id"], job["queue"], job["status"], job["history"]) == (
        job_id,
        "mail",
        "pending",
        [],
    )


def test_list_jobs_filters_and_paginates(client: Client) -> None:
    ids = [
        body(post_json(client, "/jobs", {"type": t, "queue": "q"}))["id"]
        for t in ("a", "b", "a", "a")
    ]
    page = body(client.http.get("/jobs?type=a&limit=2"))
    assert [j["id"] for j in page["jobs"]] == [ids[3], ids[2]]
    rest = body(client.http.get(f"/jobs?type=a&limit=2&cursor={page['next_cursor']}"))
    assert [j["id"] for j in rest["jobs"]] == [ids[0]] and rest["next_cursor"] is None
    assert body(client.http.get("/jobs?status=completed"))["jobs"] == []


def test_queues_counts_every_state(client: Client) -> None:
    post_json(client, "/jobs", {"type": "echo", "queue": "mail"})
    post_json(client, "/jobs", {"type": "echo", "queue": "mail"})
    queues = body(client.http.get("/queues"))["queues"]
    assert queues[0].pop("oldest_waiting_s") >= 0  # the first job has waited since its commit
    assert queues == [
        {
            "name": "mail",
            "counts": {
                "pending": 2,
                "delayed": 0,
                "active": 0,
                "completed": 0,
                "failed": 0,
                "cancelled": 0,
            },
            "runners": 0,
            "paused": False,
            "remove_on_complete": None,
            "remove_on_fail": None,
        }
    ]


def test_health_ok(client: Client) -> None:
    response = client.http.get("/health")
    assert response.status_code == 200
    assert body(response)["checks"] == {"postgres": "ok", "redis": "ok"}


# --- errors ---------------------------------------------------------------------------------


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.body
    error = body(response)["error"]
    assert error["code"] == code and error["message"]
    assert "Traceback" not in response.body.decode()
    return error


def test_malformed_json_is_400(client: Client) -> None:
    response = client.http.post(
        "/jobs", headers={"content-type": "application/json"}, body='{"type": "echo",'
    )
    assert_error(response, 400, "malformed_json")


def test_empty_body_is_400(client: Client) -> None:
    response = client.http.post("/jobs", headers={"content-type": "application/json"}, body="")
    assert_error(response, 400, "malformed_json")


def test_unknown_job_is_404(client: Client) -> None:
    assert_error(client.http.get("/jobs/987654"), 404, "not_found")


def test_non_json_media_type_is_415(client: Client) -> None:
    response = client.http.post("/jobs", headers={"content-type": "text/plain"}, body="hi")
    assert_error(response, 415, "unsupported_media_type")


def test_validation_errors_are_422_with_field_paths(client: Client, services: Services) -> None:
    response = post_json(
        client, "/jobs", {"type": "bad type!", "payload": [1], "priority": 5000, "extra": 1}
    )
    error = assert_error(response, 422, "validation_error")
    paths = {d["path"] for d in error["details"]}
    assert paths == {"type", "payload", "priority", "extra"}
    assert services.store.queue_counts() == {}  # nothing stored


def test_json_postgres_cannot_store_is_422_not_500(client: Client, services: Services) -> None:
    bodies = [
        '{"type": "echo", "payload": {"x": NaN}}',
        '{"type": "echo", "payload": {"x": [1e999]}}',
        '{"type": "echo", "payload": {"x": "a\\u0000b"}}',
        '{"type": "echo", "payload": {"a\\u0000": 1}}',
        '{"type": "echo", "idempotency_key": "k\\u0000"}',
    ]
    for body in bodies:
        response = client.http.post(
            "/jobs", body=body, headers={"content-type": "application/json"}
        )
        error = assert_error(response, 422, "validation_error")
        assert "Postgres" in error["details"][0]["message"], body
    assert services.store.queue_counts() == {}  # nothing stored
    big = '{"type": "echo", "payload": {"n": 123456789012345678901234567890}}'
    response = client.http.post("/jobs", body=big, headers={"content-type": "application/json"})
    assert response.status_code == 201  # jsonb keeps numbers of any size
    assert json.loads(response.body)["payload"] == {"n": 123456789012345678901234567890}


def test_body_must_be_an_object(client: Client) -> None:
    assert_error(post_json(client, "/jobs", [1, 2]), 422, "validation_error")


def test_bad_query_and_path_params_are_422(client: Client) -> None:
    error = assert_error(client.http.get("/jobs?limit=abc&status=weird"), 422, "validation_error")
    assert {d["path"] for d in error["details"]} == {"limit", "status"}
    assert_error(client.http.get("/jobs/abc"), 422, "validation_error")


def test_a_method_a_route_lacks_is_405_in_our_shape(client: Client) -> None:
    """Chalice answers these itself; before, its body was {"Code": "MethodNotAllowedError"}."""
    for method, path in (
        ("PUT", "/jobs"),
        ("DELETE", "/queues"),
        ("GET", "/jobs/1/retry"),
        ("PATCH", "/jobs/1"),
    ):
        response = client.http.request(
            method, path, headers={"content-type": "application/json"}, body=b"{}"
        )
        error = assert_error(response, 405, "method_not_allowed")
        assert method in error["message"], (method, path, error)
        assert set(body(response)) == {"error"} and "Code" not in body(response)["error"]
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Allow"]  # what the route does take


def test_redis_down_still_stores_the_job_durably(settings: Settings, admin_key: str) -> None:
    """Our choice: Postgres is the record, so the job is kept and dispatched later."""
    services = Services.connect(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        with keyed(Client(create_app(services)), admin_key) as client:
            response = post_json(client, "/jobs", {"type": "echo"})
            assert response.status_code == 201
            job = body(response)
            assert job["status"] == "pending" and job["dispatched"] is False
            assert body(client.http.get(f"/jobs/{job['id']}"))["status"] == "pending"
            health = client.http.get("/health")
            assert health.status_code == 503 and health.headers["Retry-After"]
            assert body(health)["error"]["details"]["checks"]["redis"] == "unavailable"
    finally:
        services.close()


def test_postgres_down_is_503_with_retry_after(settings: Settings) -> None:
    down = "postgresql://postgres@127.0.0.1:1/none"  # nothing listens there
    services = Services.connect(settings.model_copy(update={"database_url": down}))
    services.store.pools.durable.timeout = 0.5
    try:
        with keyed(Client(create_app(services)), UNKNOWN_KEY) as client:
            response = post_json(client, "/jobs", {"type": "echo"})
            error = assert_error(response, 503, "dependency_unavailable")
            assert error["details"] == {"dependency": "postgres"}
            assert response.headers["Retry-After"] == "2"
            # Nothing reached Redis: no half-written job.
            assert (
                redis.Redis.from_url(settings.redis_url).keys(f"{settings.redis_prefix}:*wait")
                == []
            )
            # Known to be down: every later request is answered at once, not after a wait.
            started = time.monotonic()
            for _ in range(5):
                assert post_json(client, "/jobs", {"type": "echo"}).status_code == 503
            assert client.http.get("/health").status_code == 503
            assert time.monotonic() - started < 1.0
    finally:
        services.close()


def test_postgres_down_answers_concurrent_requests_at_once(settings: Settings) -> None:
    """Once the probe knows Postgres is down, concurrent requests each get their 503 in
    milliseconds; before, every one of them waited out the pool's 3 s checkout timeout."""
    down = "postgresql://postgres@127.0.0.1:1/none"  # nothing listens there
    services = Services.connect(settings.model_copy(update={"database_url": down}))
    try:
        with keyed(Client(create_app(services)), UNKNOWN_KEY) as client:
            assert post_json(client, "/jobs", {"type": "echo"}).status_code == 503
        # The first failure starts a probe; its verdict (connection refused) takes a moment.
        deadline = time.monotonic() + 10
        while not services.store.pools.down:
            assert time.monotonic() < deadline, "the probe never found postgres down"
            time.sleep(0.005)
        answers: list[tuple[int, str | None, float]] = []
        requests = [
            lambda c: post_json(c, "/jobs", {"type": "echo"}),
            lambda c: c.http.get("/jobs/1"),
            lambda c: c.http.post("/jobs/1/retry"),
            lambda c: c.http.get("/health"),
        ]

        def call(send: Any) -> None:
            # An app per thread: Chalice keeps the current request on the app object.
            with keyed(Client(create_app(services)), UNKNOWN_KEY) as own:
                started = time.monotonic()
                response = send(own)
                took = time.monotonic() - started
            answers.append((response.status_code, response.headers.get("Retry-After"), took))

        threads = [threading.Thread(target=call, args=(requests[i % 4],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(answers) == 8
        assert {(status, retry) for status, retry, _ in answers} == {(503, "2")}, answers
        assert max(took for _, _, took in answers) < 1.0, answers
    finally:
        services.close()
