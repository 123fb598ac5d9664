"""The live runner registry: a runner registers at its start with its fields, beats with the
jobs it holds, and is gone at its clean stop; GET /workers lists the runners whose last beat
is at most two of their intervals old (database clock), oldest first; GET /queues counts the
live runners of each queue; long-dead rows are pruned by any runner's beat."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from chalice.test import Client

from common.runner.registry import Registration
from common.services import Services
from common.store.runners import (
    RunnerBeat,
    beat_runner,
    live_runners,
    live_runners_per_queue,
)
from common.store.sqlfile import load_queries
from tests.helpers import WAIT_S, run_djs, running, wait_until
from tests.keys import bearer, make_key
from tests.test_openapi import assert_fits
from tests.workers_helpers import handlers, live_row, rows, submit


def _workers(client: Client, key: str | None = None) -> tuple[int, Any]:
    response = client.http.get("/workers", headers=bearer(key) if key else {})
    return response.status_code, json.loads(response.body)


def _json(key: str) -> dict[str, str]:
    return {**bearer(key), "content-type": "application/json"}


def _register(services: Services, runner_id: str, queues: list[str], interval: float = 5.0) -> None:
    registration = Registration(services.store, runner_id, queues, 2, lambda: 0, interval)
    assert registration.beat()


def _set_last_beat(services: Services, runner_id: str, ago: str) -> None:
    with services.store.connection() as conn:
        conn.execute(
            "UPDATE runners SET last_beat = now() - %s::interval WHERE id = %s", (ago, runner_id)
        )


def test_a_threaded_runner_registers_and_in_hand_follows_the_jobs_it_holds(
    services: Services, client: Client
) -> None:
    release = threading.Event()
    reg = handlers(hold=lambda event, context: release.wait(WAIT_S))
    runner = services.runner(
        reg, {"emails": 1}, upkeep=[], listen=False, concurrency=3, beat_interval_s=0.1
    )
    with running(runner):
        first = wait_until(lambda: live_row(services, runner.worker_id), "its first beat")
        ids = [submit(services, "hold", queue="emails") for _ in range(2)]
        held = wait_until(lambda: live_row(services, runner.worker_id, in_hand=2), "in_hand 2")
        status, body = _workers(client)
        assert status == 200
        [shown] = [w for w in body["workers"] if w["id"] == runner.worker_id]
        assert {k: v for k, v in shown.items() if k not in ("started_at", "last_beat")} == {
            "id": f"{socket.gethostname()}:{os.getpid()}",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": ["emails"],
            "concurrency": 3,
            "in_hand": 2,
            "beat_interval_s": 0.1,
            "version": metadata.version("djs"),
        }
        assert held["started_at"] == first["started_at"] <= first["last_beat"] < held["last_beat"]
        release.set()
        wait_until(lambda: live_row(services, runner.worker_id, in_hand=0), "in_hand 0")
        assert runner.health()["loops"]["beat"]["problem"] is None
    assert runner.worker_id not in rows(services)  # the clean stop deleted its row
    for job_id in ids:  # the id is the name the runner writes into the job's history
        job = services.store.get(job_id)
        assert job is not None and job.status == "completed"
        assert job.worker == job.history[0].worker == runner.worker_id


def test_a_burst_runner_is_listed_while_it_runs_and_gone_once_it_ends(
    services: Services,
) -> None:
    seen: list[dict[str, Any]] = []

    def look(event: dict[str, Any], context: Any) -> str:
        seen.append(wait_until(lambda: live_row(services, "burst-1", in_hand=1), "in_hand 1"))
        return "ok"

    submit(services, "look")
    reg = handlers(look=look)
    runner = services.runner(
        reg, upkeep=[], listen=False, burst=True, worker_id="burst-1", beat_interval_s=0.1
    )
    runner.run()
    assert runner.processed == 1
    assert seen[0]["queues"] == [] and seen[0]["concurrency"] == 8  # every queue
    assert rows(services) == {}


def test_the_listing_rule_is_two_intervals_exactly_by_the_database_clock(
    services: Services,
) -> None:
    """now() is fixed within a transaction: the boundary is tested to the microsecond."""
    edge = RunnerBeat("edge", "h", 1, ["q"], 1, 0, 5.0, "v", None)
    with services.store.connection() as conn, conn.transaction():
        beat_runner(conn, edge)
        conn.execute("UPDATE runners SET last_beat = now() - interval '10 s'")
        assert [r["id"] for r in live_runners(conn, 10)] == ["edge"]
        assert live_runners_per_queue(conn) == (0, {"q": 1})
        conn.execute("UPDATE runners SET last_beat = now() - interval '10.000001 s'")
        assert live_runners(conn, 10) == []
        assert live_runners_per_queue(conn) == (0, {})
        conn.execute("UPDATE runners SET beat_interval_s = 5.0000005")  # its own interval
        assert [r["id"] for r in live_runners(conn, 10)] == ["edge"]


def test_the_listing_is_oldest_first_and_bounded(services: Services) -> None:
    for n in range(3):
        _register(services, f"r{n}", [])
    with services.store.connection() as conn:
        hours_ago = "now() - (substr(id, 2) || ' hours')::interval"  # r1: 1 h ago, r2: 2 h
        conn.execute(f"UPDATE runners SET started_at = {hours_ago}")
        conn.execute("UPDATE runners SET started_at = now() - interval '5 h' WHERE id = 'r0'")
        assert [r["id"] for r in live_runners(conn, 10)] == ["r0", "r2", "r1"]
        assert [r["id"] for r in live_runners(conn, 2)] == ["r0", "r2"]


def test_get_queues_counts_runners_of_every_queue_and_of_named_ones(
    services: Services, client: Client
) -> None:
    for queue in ("default", "emails", "reports", "other"):
        submit(services, "echo", queue=queue)
    _register(services, "every", [])
    _register(services, "emails", ["emails"])
    _register(services, "emails-reports", ["emails", "reports"])
    _register(services, "dead-emails", ["emails"])
    _set_last_beat(services, "dead-emails", "10.1 s")
    document = json.loads(client.http.get("/openapi.json").body)
    body = assert_fits(document, "/queues", "get", client.http.get("/queues"))
    counted = {q["name"]: q["runners"] for q in body["queues"]}
    assert counted == {"default": 1, "emails": 3, "reports": 2, "other": 1}
    workers = assert_fits(document, "/workers", "get", client.http.get("/workers"))
    assert [w["id"] for w in workers["workers"]] == ["every", "emails", "emails-reports"]
    submitter = make_key(services.settings.database_url, "submitter")
    assert _workers(client, submitter)[0] == 403  # worker names are viewer information
    job = {"type": "echo", "queue": "emails"}
    sent = client.http.post("/jobs", headers=_json(submitter), body=json.dumps(job))
    assert sent.status_code == 201
    mine = json.loads(client.http.get("/queues", headers=bearer(submitter)).body)
    assert [(q["name"], q["counts"]["pending"], q["runners"]) for q in mine["queues"]] == [
        ("emails", 1, 3)  # its own jobs counted, every live runner of the queue
    ]


def test_a_beat_prunes_rows_dead_for_over_an_hour_and_no_other(services: Services) -> None:
    for runner_id in ("dead-2h", "dead-59m", "dead-61m"):
        _register(services, runner_id, [])
    _set_last_beat(services, "dead-2h", "2 hours")
    _set_last_beat(services, "dead-61m", "61 minutes")
    _set_last_beat(services, "dead-59m", "59 minutes")
    _register(services, "pruner", [])
    assert set(rows(services)) == {"dead-59m", "pruner"}


def test_a_row_pruned_or_deleted_meanwhile_comes_back_with_its_start(
    services: Services,
) -> None:
    registration = Registration(services.store, "back", [], 1, lambda: 0, 5.0)
    assert registration.beat()
    started = rows(services)["back"]["started_at"]
    with services.store.connection() as conn:
        conn.execute("DELETE FROM runners")
    assert registration.beat() and rows(services)["back"]["started_at"] == started


def test_djs_workers_lists_the_live_runners(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    _register(services, "cli-1", ["emails"])
    _register(services, "cli-dead", [])
    _set_last_beat(services, "cli-dead", "11 s")
    result = run_djs(["workers"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    [shown] = json.loads(result.stdout)
    assert shown["id"] == "cli-1" and shown["queues"] == ["emails"]
    assert shown["last_beat"] >= shown["started_at"]


def test_every_registry_query_prepares(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, query in load_queries("runners.sql").items():
            body = query
            for i, key in enumerate(sorted(set(_placeholders(query))), start=1):
                body = body.replace(f"%({key})s", f"${i}")
            conn.execute(f"PREPARE q_{name} AS {body}")


def _placeholders(query: str) -> list[str]:
    return re.findall(r"%\((\w+)\)s", query)
