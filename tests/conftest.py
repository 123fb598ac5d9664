"""Real PostgreSQL and Redis for every test: a database cloned from a migrated template and a
Redis key prefix of its own, so tests never see each other's jobs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from chalice.test import Client
from psycopg import sql

from api_app.factory import create_app
from common.services import Services
from common.settings import Settings
from common.store.migrate import migrate
from tests.keys import PEPPER, keyed, make_key

ADMIN_URL = os.environ.get("DJS_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("DJS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos suite starts and kills real processes under load: it runs serially."""
    for item in items:
        if "tests/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.serial)


def db_url(name: str) -> str:
    return psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=name)


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def template_db(worker_id: str) -> Iterator[str]:
    # Unique per run: two test runs against one server must not drop each other's template.
    name = f"djs_test_template_{uuid.uuid4().hex[:8]}_{worker_id}"
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(db_url(name), autocommit=True) as conn:
        migrate(conn)
    yield name
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def worker_id() -> str:
    # pytest-xdist's own fixture shadows this one when it runs.
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture
def database_url(template_db: str) -> Iterator[str]:
    name = f"djs_test_{uuid.uuid4().hex[:12]}"
    _admin(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template_db)
        )
    )
    yield db_url(name)
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"djstest{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def settings(database_url: str, redis_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        poll_interval_s=0.2,
        reconcile_after_s=0.5,
        key_pepper=PEPPER,
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Environment for a djs process that must use this test's database and prefix."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DJS_REDIS_PREFIX": settings.redis_prefix,
        "DJS_KEY_PEPPER": PEPPER,
    }


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = Services.connect(settings)
    svc.store.pools.durable.wait(timeout=10)
    yield svc
    svc.close()


@pytest.fixture
def admin_key(database_url: str) -> str:
    """An admin key in this test's database."""
    return make_key(database_url, "admin", "test-admin")


@pytest.fixture
def client(services: Services, admin_key: str) -> Iterator[Client]:
    """The API under chalice.test, every request sent with the admin key unless it names
    its own Authorization."""
    with keyed(Client(create_app(services)), admin_key) as test_client:
        yield test_client


def post_json(client: Client, path: str, body: Any, **headers: str) -> Any:
    import json

    return client.http.post(
        path,
        headers={"content-type": "application/json", **headers},
        body=json.dumps(body),
    )
