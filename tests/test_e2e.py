"""End to end with real processes: `djs api` and `djs worker`, 200 jobs over HTTP."""

from __future__ import annotations

import time

import psycopg

from common.settings import Settings
from tests.helpers import Http, free_port, start_djs, stop, wait_for_health


def test_200_jobs_over_http_complete_once_each(
    settings: Settings, env: dict[str, str], admin_key: str
) -> None:
    port = free_port()
    api = start_djs(["api", "--port", str(port)], env)
    worker = start_djs(["worker", "--concurrency", "8"], env)
    try:
        wait_for_health(port)
        client = Http(port, admin_key)
        ids = []
        for i in range(200):
            status, job = client.request("POST", "/jobs", {"type": "echo", "payload": {"i": i}})
            assert status == 201 and job["status"] == "pending"
            ids.append(job["id"])
        deadline = time.monotonic() + 30
        with psycopg.connect(settings.database_url) as conn:
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT count(*) FROM jobs WHERE status = 'completed'"
                ).fetchone()
                if done and done[0] == 200:
                    break
                time.sleep(0.1)
            rows = conn.execute(
                "SELECT j.id, j.status, j.result, count(a.id), j.attempts FROM jobs j"
                " LEFT JOIN job_attempts a ON a.job_id = j.id GROUP BY j.id ORDER BY j.id"
            ).fetchall()
        assert [r[0] for r in rows] == ids
        for i, (_, status, result, attempt_rows, attempts) in enumerate(rows):
            assert (status, result, attempt_rows, attempts) == ("completed", {"i": i}, 1, 1)
        status, job = client.request("GET", f"/jobs/{ids[0]}")
        assert status == 200 and job["status"] == "completed" and len(job["history"]) == 1
        status, missing = client.request("GET", "/no/such/route")
        assert status == 404 and missing["error"]["code"] == "not_found"
        client.close()
    finally:
        worker_rc, worker_log = stop(worker)
        api_rc, api_log = stop(api)
    assert worker_rc == 0, worker_log
    assert api_rc == 0, api_log


def test_stock_chalice_local_serves_the_api_with_our_fixes(
    settings: Settings, env: dict[str, str], admin_key: str
) -> None:
    """`chalice local` in api_app/ loads app.py, which applies the keep-alive fix and the JSON
    404 to Chalice's own server."""
    import subprocess
    import sys
    from pathlib import Path

    port = free_port()
    chalice = Path(sys.executable).with_name("chalice")
    process = subprocess.Popen(
        # No autoreload: its watcher forks a server child that outlives a SIGTERM.
        [str(chalice), "local", "--no-autoreload", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1] / "api_app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(port)
        client = Http(port, admin_key)
        status, job = client.request("POST", "/jobs", {"type": "echo"})
        assert status == 201 and job["status"] == "pending"
        status, refused = Http(port).request("GET", f"/jobs/{job['id']}")  # no key: the
        assert status == 401 and refused["error"]["code"] == "unauthorized"  # authorizer ran
        status, missing = client.request("GET", "/no/such/route")  # same kept-alive socket
        assert status == 404 and missing["error"]["code"] == "not_found"
        client.close()
    finally:
        stop(process)


def test_chalice_local_with_its_reloader_stops_on_sigterm(
    settings: Settings, env: dict[str, str]
) -> None:
    """With autoreload (the default) the server runs in a child process, which used to keep
    serving after the parent got SIGTERM."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    port = free_port()
    chalice = Path(sys.executable).with_name("chalice")
    process = subprocess.Popen(
        [str(chalice), "local", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1] / "api_app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(port, timeout_s=60)
    finally:
        stop(process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _answers(port):
        time.sleep(0.2)
    assert not _answers(port), "the reloader's child still serves after SIGTERM"


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
