"""GET /ready: Postgres and Redis answer and every migration is applied, on the API (under
chalice.test) and on a runner's probe port; 503 names what is not ready."""

from __future__ import annotations

import json

from chalice.test import Client

from api_app.factory import create_app
from common.services import Services
from common.settings import Settings
from common.store.sqlfile import migration_files


def _ready(client: Client) -> tuple[int, dict[str, object]]:
    answer = client.http.get("/ready")
    return answer.status_code, json.loads(answer.body)


def test_ready_on_a_migrated_database_without_a_key(services: Services) -> None:
    with Client(create_app(services)) as client:
        status, body = _ready(client)
    assert status == 200, body
    assert body == {
        "status": "ok",
        "checks": {"postgres": "ok", "migrations": "ok", "redis": "ok"},
    }


def test_a_missing_migration_is_503_naming_it(services: Services) -> None:
    number, last, _ = migration_files()[-1]
    with services.store.connection() as conn:
        conn.execute("DELETE FROM djs_migrations WHERE number = %s", (number,))
    with Client(create_app(services)) as client:
        status, body = _ready(client)
        health = client.http.get("/health")
    assert status == 503
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "not_ready"
    assert last in error["message"]
    assert error["details"] == {
        "checks": {"postgres": "ok", "migrations": "1 not applied", "redis": "ok"},
        "missing_migrations": [last],
    }
    assert health.status_code == 200  # liveness does not ask about migrations


def test_redis_unreachable_is_503(settings: Settings) -> None:
    closed = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    services = Services.connect(closed)
    try:
        with Client(create_app(services)) as client:
            status, body = _ready(client)
            retry_after = client.http.get("/ready").headers.get("Retry-After")
    finally:
        services.close()
    assert status == 503
    error = body["error"]
    assert isinstance(error, dict)
    assert error["details"]["checks"] == {
        "postgres": "ok",
        "migrations": "ok",
        "redis": "unavailable",
    }
    assert "redis" in error["message"] and retry_after
