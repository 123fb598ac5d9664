"""Rows djs's bounds would refuse, written with SQL (as rows from before the bounds are): every
read, count and upkeep loop goes on, and each row stays visible. Before, a run_at in year
10000 or a payload nested 2,000 deep made GET /jobs a 500 and killed the loops that met it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from chalice.test import Client

from common.handlers import HandlerRegistry
from common.services import Services
from common.store.rows import SHOWN_DEPTH, UNSHOWN, json_depth

YEAR_10000 = "9999-12-31T23:59:59-14:00"  # valid ISO 8601; year 10000 in UTC


def nested(depth: int) -> str:
    """JSON text of lists nested `depth` deep."""
    return "[" * depth + "1" + "]" * depth


# name -> the columns a row of that name is inserted with (SQL literals).
POISON: dict[str, dict[str, str]] = {
    "year_10000": {"status": "'delayed'", "run_at": f"'{YEAR_10000}'"},
    "infinite_times": {
        "status": "'completed'",
        "created_at": "'-infinity'",
        "finished_at": "'infinity'",
        "run_at": "'0001-01-01T00:00:00+14:00'",  # year 0 (1 BC) in UTC
    },
    "deep_300": {"payload": f"""'{{"x": {nested(299)}}}'"""},  # beyond pydantic's 255
    "deep_2000": {"payload": f"""'{{"x": {nested(1999)}}}'"""},  # beyond orjson's 1,024
    "huge_integer": {"payload": """('{"x": 1' || repeat('0', 5000) || '}')::jsonb"""},
    "not_objects": {"payload": "'[1, 2]'", "backoff": "'\"fast\"'"},
    "not_finite": {"timeout_s": "'Infinity'", "progress": "'NaN'"},
}


def insert_poison(services: Services) -> dict[str, int]:
    ids = {}
    with services.store.connection() as conn:
        for name, columns in POISON.items():
            values = {"queue": "'poison'", "type": "'probe'", "payload": "'{}'", **columns}
            values.setdefault("status", "'pending'")
            sql = f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join(values.values())})"
            ids[name] = conn.execute(sql + " RETURNING id").fetchone()["id"]  # type: ignore[index]
        # An attempt whose times Postgres cannot subtract (its duration).
        conn.execute(
            "INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome)"
            " VALUES (%s, 1, 'w', '-infinity', 'infinity', 'completed')",
            (ids["infinite_times"],),
        )
    return ids


def _get(client: Client, path: str) -> Any:
    response = client.http.get(path)
    assert response.status_code == 200, response.body
    return json.loads(response.body)  # valid JSON: no NaN


@pytest.fixture
def poison(services: Services) -> dict[str, int]:
    return insert_poison(services)


def test_every_row_is_listed_and_shown(client: Client, poison: dict[str, int]) -> None:
    listed = _get(client, "/jobs?queue=poison")
    assert {j["id"] for j in listed["jobs"]} == set(poison.values())
    jobs = {name: _get(client, f"/jobs/{job_id}") for name, job_id in poison.items()}
    assert jobs["year_10000"]["run_at"] == "9999-12-31T23:59:59.999999Z"  # clamped
    infinite = jobs["infinite_times"]
    assert infinite["created_at"] == "0001-01-01T00:00:00Z"
    assert infinite["finished_at"] == "9999-12-31T23:59:59.999999Z"
    assert infinite["history"][0]["duration_ms"] is None
    assert jobs["deep_300"]["payload"] == {
        UNSHOWN: f"a JSON value nested 300 levels deep; the API shows {SHOWN_DEPTH}"
    }
    assert UNSHOWN in jobs["deep_2000"]["payload"]
    assert jobs["huge_integer"]["payload"] == {"x": None}  # a float beyond float's range
    assert jobs["not_objects"]["payload"][UNSHOWN] == "the stored payload is not a JSON object"
    assert jobs["not_objects"]["payload"]["value"] == [1, 2]
    assert jobs["not_objects"]["backoff"]["value"] == "fast"
    assert (jobs["not_finite"]["timeout_s"], jobs["not_finite"]["progress"]) == (None, None)
    counts = _get(client, "/queues")["queues"]
    assert [q["counts"]["pending"] for q in counts if q["name"] == "poison"] == [5]


def test_the_janitor_quarantines_a_run_at_it_cannot_read(
    client: Client, services: Services, poison: dict[str, int]
) -> None:
    janitor, reconciler = services.upkeep()[1], services.upkeep()[0]
    assert reconciler.run_once() >= 0  # walks the poison rows, pushes them
    assert janitor.run_once() >= 1
    job = _get(client, f"/jobs/{poison['year_10000']}")
    assert (job["status"], job["fail_reason"]) == ("failed", "invalid_record")
    assert "run_at is 10000-01-01 13:59:59+00" in job["last_error"]
    assert "outside the years 1 to 9999" in job["last_error"]
    assert janitor.run_once() == 0  # once: the update is guarded by the status
    statuses = {j["id"]: j["status"] for j in _get(client, "/jobs?queue=poison")["jobs"]}
    assert statuses[poison["infinite_times"]] == "completed"


def _probe_registry(seen: dict[int, Any]) -> HandlerRegistry:
    class _App:
        def lambda_function(self, name: str) -> Any:
            return lambda func: func

    def probe(event: dict[str, Any], context: Any) -> dict[str, int]:
        seen[context.job_id] = event["payload"]
        if isinstance(event["payload"], list):
            raise RuntimeError("a list payload")  # a failure with a backoff that is a string
        return {"depth": json_depth(event["payload"])}

    registry = HandlerRegistry()
    registry.handler(_App(), "probe")(probe)
    return registry


def test_a_runner_runs_them_with_its_loops_alive(
    services: Services, poison: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    seen: dict[int, Any] = {}
    runner = services.runner(_probe_registry(seen), burst=True, listen=False, poll_interval_s=0.05)
    with caplog.at_level(logging.ERROR):
        runner.run()  # the burst pushes what Redis lacks, runs it, and ends
    assert [loop.restarts for loop in runner.loops.values()] == [0] * len(runner.loops)
    assert "died" not in caplog.text and "failed; trying again" not in caplog.text
    assert json_depth(seen[poison["deep_2000"]]) == 2000  # as stored, not a note
    assert seen[poison["huge_integer"]] == {"x": float("inf")}
    with services.store.connection() as conn:
        rows = conn.execute("SELECT id, status::text, result FROM jobs").fetchall()
    by_id = {r["id"]: r for r in rows}
    assert by_id[poison["deep_300"]]["result"] == {"depth": 300}
    assert by_id[poison["not_finite"]]["status"] == "completed"
    assert by_id[poison["not_objects"]]["status"] in ("delayed", "pending", "failed")
    assert by_id[poison["year_10000"]]["status"] == "failed"  # the runner's own janitor
