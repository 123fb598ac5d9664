"""GET /jobs: sort (newest, oldest, priority) with keyset cursors in every order, and search
by payload fragment, payload text and error text, bounded at the edge."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from chalice.test import Client

from common import limits
from common.models import JobSubmission
from common.services import Services
from tests.conftest import post_json
from tests.keys import bearer, make_key


def _submit(client: Client, key: str | None = None, **fields: Any) -> int:
    headers = bearer(key) if key else {}
    response = post_json(client, "/jobs", {"type": "echo", **fields}, **headers)
    assert response.status_code == 201, response.body
    return int(response.json_body["id"])


def _walk(client: Client, query: str, limit: int = 2, key: str | None = None) -> list[int]:
    """Every id the pages of a query give, following next_cursor to the end."""
    ids: list[int] = []
    cursor = None
    for _ in range(100):
        suffix = f"&cursor={cursor}" if cursor is not None else ""
        headers = bearer(key) if key else {}
        page = client.http.get(f"/jobs?{query}&limit={limit}{suffix}", headers=headers).json_body
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the pages never ended")


def test_every_order_walks_each_job_once(client: Client) -> None:
    priorities = [0, 5, 5, 1000, 0, 5, 7]
    ids = [_submit(client, queue="sorted", priority=p) for p in priorities]
    by_priority = sorted(zip(priorities, ids, strict=True), key=lambda pair: (-pair[0], pair[1]))
    assert _walk(client, "queue=sorted") == ids[::-1]
    assert _walk(client, "queue=sorted&sort=oldest") == ids
    assert _walk(client, "queue=sorted&sort=priority") == [i for _, i in by_priority]
    assert _walk(client, "queue=sorted&status=pending&sort=priority", 3) == [
        i for _, i in by_priority
    ]


def test_a_priority_page_goes_on_after_its_last_job_was_removed(client: Client) -> None:
    ids = [_submit(client, queue="gone", priority=p) for p in (9, 9, 3, 3)]
    first = client.http.get("/jobs?queue=gone&sort=priority&limit=1").json_body
    assert [j["id"] for j in first["jobs"]] == [ids[0]]
    assert client.http.delete(f"/jobs/{ids[0]}").status_code == 200
    rest = _walk(client, f"queue=gone&sort=priority&cursor={first['next_cursor']}", 10)
    assert rest == [ids[1], ids[2], ids[3]]


def test_search_by_payload_fragment_text_and_error(client: Client, services: Services) -> None:
    order = _submit(client, queue="s", payload={"order": {"id": 7, "lines": [1, 2]}, "to": "A_B"})
    _submit(client, queue="s", payload={"order": {"id": 8}, "to": "a%b"})
    fragment = quote(json.dumps({"order": {"id": 7}}))
    assert _walk(client, f"payload={fragment}") == [order]
    assert _walk(client, f"payload={quote(json.dumps({'order': {'lines': [2]}}))}") == [order]
    assert len(_walk(client, "queue=s&text=A_b")) == 1  # any case; _ is not a wildcard
    assert len(_walk(client, "queue=s&text=%25")) == 1  # nor is %
    failing = _submit(client, queue="s")
    with services.store.connection() as conn:
        conn.execute(
            "UPDATE jobs SET status = 'failed', last_error = 'SMTPError: 550 mailbox gone'"
            " WHERE id = %s",
            (failing,),
        )
    assert _walk(client, "error=MAILBOX%20GONE") == [failing]
    assert _walk(client, "error=mailbox&status=failed&queue=s&sort=priority") == [failing]
    assert _walk(client, "error=nowhere") == []


def test_text_search_looks_at_a_bounded_window_and_goes_on(
    client: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "TEXT_SCAN", 3)
    needle = _submit(client, payload={"note": "the needle"})
    for _ in range(7):
        _submit(client, payload={"note": "hay"})
    first = client.http.get("/jobs?text=needle").json_body
    assert first["jobs"] == [] and first["next_cursor"] is not None  # 3 looked at, go on
    assert _walk(client, "text=needle", limit=5) == [needle]
    assert _walk(client, "text=needle&sort=oldest", limit=5) == [needle]
    assert _walk(client, "text=needle&sort=priority", limit=5) == [needle]


def test_a_submitter_searches_its_own_jobs_only(client: Client, services: Services) -> None:
    services.manager.enqueue([JobSubmission(type="echo", payload={"k": "shared"})])
    submitter = make_key(services.settings.database_url, "submitter", "searcher")
    mine = _submit(client, submitter, payload={"k": "shared"})
    fragment = quote(json.dumps({"k": "shared"}))
    assert _walk(client, f"payload={fragment}", key=submitter) == [mine]
    assert _walk(client, "text=shared", key=submitter) == [mine]
    assert len(_walk(client, "text=shared")) == 2  # an admin sees both


@pytest.mark.parametrize(
    "query",
    [
        "payload=[1]",
        "payload=7",
        "payload=%7Bnot%20json",
        "payload=" + quote("{" * 70 + "}" * 70),
        "payload=" + quote(json.dumps({"a": "x" * limits.MAX_SEARCH_FRAGMENT})),
        "payload=" + quote('{"a": "\\u0000"}'),
        "text=" + "x" * (limits.MAX_SEARCH_TEXT + 1),
        "error=",
        "error=%00",
        "sort=random",
        "cursor=-1",
    ],
)
def test_search_parameters_are_bounded(client: Client, query: str) -> None:
    response = client.http.get(f"/jobs?{query}")
    assert response.status_code == 422, response.body
    assert response.json_body["error"]["code"] == "validation_error"
