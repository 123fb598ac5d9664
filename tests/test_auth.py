"""API keys at work: revocation through the cache, last use without a write per request,
what a submitter sees of its own jobs and of others', the pepper the API needs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client
from pydantic import ValidationError

import api_app.auth.verifier as verifier_module
from api_app.auth.authorizer import GATEWAY_TTL_S
from api_app.auth.verifier import KeyVerifier
from api_app.authorizer_cache import ANSWER_TTL_S
from api_app.factory import NoKeyPepper, create_app
from common.services import Services
from common.settings import Settings
from common.store.keys import list_keys, revoke_key
from tests.conftest import post_json
from tests.keys import PEPPER, UNKNOWN_KEY, bearer, keyed, make_key


@pytest.fixture
def quick_services(settings: Settings) -> Iterator[Services]:
    """The API with a key cache of 0.3 s, so revocation is seen without waiting 30 s."""
    svc = Services.connect(settings.model_copy(update={"key_cache_s": 0.3}))
    yield svc
    svc.close()


def _get(client: Client, path: str, key: str) -> Any:
    return client.http.get(path, headers=bearer(key))


def test_the_default_cache_refuses_a_revoked_key_within_60_s() -> None:
    settings = Settings()
    assert settings.key_cache_s <= 30 and settings.key_cache_s + GATEWAY_TTL_S <= 60
    assert settings.key_cache_s + ANSWER_TTL_S <= 60  # djs api's own answer cache
    with pytest.raises(ValidationError):
        Settings(key_cache_s=61)


def test_a_revoked_key_stops_working_through_the_cache(quick_services: Services) -> None:
    key = make_key(quick_services.settings.database_url, "viewer", "soon-revoked")
    with keyed(Client(create_app(quick_services)), None) as client:
        assert _get(client, "/me", key).status_code == 200  # verified, now cached
        with quick_services.store.connection() as conn:  # as `djs keys revoke` does
            revoke_key(conn, "soon-revoked")
        deadline = time.monotonic() + 5
        while _get(client, "/me", key).status_code == 200:
            assert time.monotonic() < deadline, "still accepted after 5 s"
            time.sleep(0.05)
        refused = _get(client, "/me", key)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoking_through_the_api_is_immediate_here(client: Client, services: Services) -> None:
    key = make_key(services.settings.database_url, "operator", "revoked-here")
    assert _get(client, "/me", key).status_code == 200
    [row] = [
        r for r in json.loads(client.http.get("/keys").body)["keys"] if r["name"] == "revoked-here"
    ]
    assert client.http.delete(f"/keys/{row['id']}").status_code == 200
    assert _get(client, "/me", key).status_code == 401
    me = json.loads(client.http.get("/me").body)
    [mine] = [
        r for r in json.loads(client.http.get("/keys").body)["keys"] if r["name"] == me["name"]
    ]
    assert client.http.delete(f"/keys/{mine['id']}").status_code == 409  # never itself


def test_a_cached_key_costs_no_query_and_its_use_is_flushed_later(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = verifier_module.key_by_prefix

    def counted(conn: Any, prefix: str) -> Any:
        calls.append(prefix)
        return original(conn, prefix)

    monkeypatch.setattr(verifier_module, "key_by_prefix", counted)
    key = make_key(services.settings.database_url, "submitter", "busy")
    verifier = KeyVerifier(services.store, PEPPER.encode(), ttl_s=30, touch_interval_s=3600)
    for _ in range(50):
        assert verifier.verify(key) is not None
    assert verifier.verify(UNKNOWN_KEY) is None and verifier.verify(UNKNOWN_KEY) is None
    assert len(calls) == 2  # one per key, refused ones too: a flood of bad keys is cheap
    with services.store.connection() as conn:
        assert [r["last_used_at"] for r in list_keys(conn)] == [None]  # no write per request
    verifier.flush()
    with services.store.connection() as conn:
        assert [r["last_used_at"] for r in list_keys(conn)] != [None]


def test_a_submitter_sees_only_its_own_jobs_without_workers_or_tracebacks(
    client: Client, services: Services
) -> None:
    url = services.settings.database_url
    mine, theirs = make_key(url, "submitter", "mine"), make_key(url, "submitter", "theirs")

    def submit(key: str, queue: str) -> int:
        body = json.dumps({"type": "echo", "queue": queue}).encode()
        headers = {"content-type": "application/json", **bearer(key)}
        answer = client.http.post("/jobs", headers=headers, body=body)
        assert answer.status_code == 201
        return int(json.loads(answer.body)["id"])

    own = submit(mine, "shared")
    other = [submit(theirs, "shared"), submit(theirs, "secret")]
    listed = json.loads(_get(client, "/jobs", mine).body)["jobs"]
    assert [j["id"] for j in listed] == [own]
    queues = json.loads(_get(client, "/queues", mine).body)["queues"]
    assert [(q["name"], q["counts"]["pending"]) for q in queues] == [("shared", 1)]
    for ident in other:
        assert _get(client, f"/jobs/{ident}", mine).status_code == 404
    listed = json.loads(_get(client, f"/jobs?ids={','.join(map(str, other))}", mine).body)
    assert listed["jobs"] == []
    detail = json.loads(_get(client, f"/jobs/{own}", mine).body)
    assert detail["worker"] is None and all(a["traceback"] is None for a in detail["history"])
    everything = json.loads(client.http.get("/jobs").body)["jobs"]  # the admin key: all
    assert sorted(j["id"] for j in everything) == sorted([own, *other])


def test_another_keys_idempotency_key_is_refused_without_naming_its_job(
    client: Client, services: Services
) -> None:
    url = services.settings.database_url
    first, second = make_key(url, "submitter", "first"), make_key(url, "submitter", "second")

    def submit(key: str, payload: dict[str, Any]) -> Any:
        body = json.dumps({"type": "echo", "payload": payload, "idempotency_key": "k-1"})
        headers = {"content-type": "application/json", **bearer(key)}
        return client.http.post("/jobs", headers=headers, body=body.encode())

    created = submit(first, {"n": 1})
    assert created.status_code == 201
    job_id = json.loads(created.body)["id"]
    assert json.loads(submit(first, {"n": 1}).body)["id"] == job_id  # a replay: the same job
    own_clash = json.loads(submit(first, {"n": 2}).body)["error"]
    assert own_clash["code"] == "conflict" and own_clash["details"]["job_id"] == job_id
    theirs = submit(second, {"n": 1})  # the same body, another key: not a replay
    assert theirs.status_code == 409
    assert json.loads(theirs.body)["error"]["details"]["job_id"] is None


def test_the_api_does_not_start_without_a_pepper(settings: Settings) -> None:
    services = Services.connect(settings.model_copy(update={"key_pepper": None}))
    try:
        with pytest.raises(NoKeyPepper, match="DJS_KEY_PEPPER"):
            create_app(services)
    finally:
        services.close()


@pytest.mark.parametrize("rate", [True, "5", 0, -1.5, 1e7])
def test_a_key_rate_that_is_not_a_number_in_bounds_is_refused(client: Client, rate: Any) -> None:
    # `true` was taken as a rate of 1.0 (schemathesis found it: pydantic's lax float).
    answer = post_json(client, "/keys", {"name": "rated", "role": "viewer", "rate_per_s": rate})
    assert answer.status_code == 422, answer.body
    assert json.loads(answer.body)["error"]["details"][0]["path"] == "rate_per_s"


def test_a_key_rate_given_as_an_integer_is_taken(client: Client) -> None:
    answer = post_json(client, "/keys", {"name": "rated", "role": "viewer", "rate_per_s": 5})
    assert answer.status_code == 201, answer.body
    assert json.loads(answer.body)["rate_per_s"] == 5.0
