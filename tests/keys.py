"""API keys for tests: one pepper per test run, keys made straight in a test's database, and
a chalice.test client that sends a key unless a request names its own Authorization."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import psycopg
from chalice.app import Chalice
from chalice.config import Config
from chalice.test import Client, TestHTTPClient

from common.store.keys import create_key

# Made per run: no pepper is ever written in the repository.
PEPPER = secrets.token_hex(16)
# Well formed, never stored: a key the API does not know.
UNKNOWN_KEY = f"djs_{'0' * 8}_{'A' * 43}"


def make_key(database_url: str, role: str, name: str | None = None, **fields: Any) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, key = create_key(
            conn, PEPPER.encode(), name or f"{role}-{uuid.uuid4().hex[:8]}", role, **fields
        )
    return key


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


class KeyedHTTPClient(TestHTTPClient):
    def __init__(self, app: Chalice, config: Config, key: str | None) -> None:
        super().__init__(app, config)
        self.key = key

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Any:
        given = {k.lower(): v for k, v in (headers or {}).items()}
        if self.key is not None:
            given.setdefault("authorization", f"Bearer {self.key}")
        return super().request(method, path, headers=given, body=body)


def keyed(client: Client, key: str | None) -> Client:
    """`client`, whose requests send `key` (None: no key) unless they name their own."""
    config = client._chalice_config  # the config its own HTTP client would have been given
    client._http_client = KeyedHTTPClient(client._app, config, key)
    return client
