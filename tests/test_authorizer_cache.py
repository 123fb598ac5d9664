"""`djs api` keeps an authorizer's answer for a token on one route a few seconds, as API
Gateway does (api_app/authorizer_cache.py): it never lets a key reach a route its role may
not call, keeps no refusal, and a revoked key is refused once the answer is old."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from api_app.factory import create_app
from api_app.wsgi import ChaliceWSGI
from common.services import Services
from common.settings import Settings
from common.store.keys import revoke_key
from tests.keys import make_key


@pytest.fixture
def quick(settings: Settings) -> Iterator[Services]:
    services = Services.connect(settings.model_copy(update={"key_cache_s": 0.2}))
    yield services
    services.close()


@pytest.fixture
def front(quick: Services) -> ChaliceWSGI:
    wsgi = ChaliceWSGI(create_app(quick))
    wsgi.gateway._authorizer.ttl_s = 0.3  # type: ignore[attr-defined]
    return wsgi


def _call(front: ChaliceWSGI, method: str, path: str, key: str, body: Any = None) -> int:
    raw = b"" if body is None else json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "HTTP_AUTHORIZATION": f"Bearer {key}",
    }
    statuses: list[str] = []
    b"".join(front(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0])


def test_a_kept_answer_opens_no_other_route(front: ChaliceWSGI, database_url: str) -> None:
    key = make_key(database_url, "submitter")
    for _ in range(3):  # the first is decided by the authorizer, the others from the cache
        assert _call(front, "POST", "/jobs", key, {"type": "echo"}) == 201
    assert _call(front, "POST", "/queues/default/pause", key, {}) == 403
    assert _call(front, "GET", "/keys", key) == 403


def test_no_refusal_is_kept_and_a_revoked_key_is_refused_once_old(
    front: ChaliceWSGI, quick: Services, database_url: str
) -> None:
    key = make_key(database_url, "viewer", "revoked-behind-the-front")
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert _call(front, "GET", "/me", wrong) == 401
    assert _call(front, "GET", "/me", key) == 200  # the refusal of another token kept nothing
    with quick.store.connection() as conn:
        revoke_key(conn, "revoked-behind-the-front")
    deadline = time.monotonic() + 10
    while _call(front, "GET", "/me", key) == 200:
        assert time.monotonic() < deadline, "a revoked key still passes after 10 s"
        time.sleep(0.05)
    assert _call(front, "GET", "/me", key) == 401
