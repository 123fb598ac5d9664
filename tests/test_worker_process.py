"""`djs worker` as a process: past --max-leaked-threads it re-executes itself (same pid, a
fresh interpreter without the leaked threads) and goes on running jobs; --health-port serves
GET /health as JSON."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.models import JobSubmission
from common.services import Services
from tests.helpers import WAIT_S, free_port, wait_until

STARTED = '"logger": "djs", "msg": "worker '  # each new process image logs it once up


@contextmanager
def _worker(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "djs_cli.main", "worker", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT_S)


def _get(port: int, path: str, method: str = "GET") -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def _health(port: int) -> dict[str, Any] | None:
    try:
        status, body = _get(port, "/health")
    except OSError:
        return None  # not listening (yet, or again)
    return body if status == 200 else None


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def _submit(services: Services, job_type: str, **fields: Any) -> int:
    return services.manager.enqueue([JobSubmission(type=job_type, **fields)])[0].job.id


def test_a_worker_past_its_leaked_thread_bound_re_executes_itself_and_goes_on(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    log, port = tmp_path / "worker.log", free_port()
    args = [
        "--concurrency",
        "1",
        "--max-leaked-threads",
        "1",
        "--import",
        "tests.hardening_handlers",
    ]
    with _worker([*args, "--health-port", str(port)], env, log) as worker:
        wait_until(lambda: _health(port), "the first image's health")
        fresh = _threads(worker.pid)
        hung = [_submit(services, "stubborn", attempts=1, timeout_s=0.3) for _ in range(2)]
        wait_until(lambda: log.read_text().count(STARTED) == 2, "a second image")
        text = log.read_text()
        assert f"replacing worker process {worker.pid} (2 abandoned handler threads" in text
        assert text.count(f":{worker.pid} on every queue") == 2  # one pid, two images
        assert worker.poll() is None
        for job_id in hung:
            job = services.store.get(job_id)
            assert job is not None and (job.status, job.fail_reason) == ("failed", "timeout")
        after = _submit(services, "echo", payload={"after": "exec"})
        wait_until(lambda: services.store.status_of(after) == "completed", "a job after exec")
        report = wait_until(lambda: _health(port), "the second image's health")
        assert report["leaked_threads"] == 0
        # The old image had `fresh` threads and two leaked ones; they went with it.
        assert _threads(worker.pid) < fresh + 2
    done = services.store.get(after)
    assert done is not None and done.history[0].worker.endswith(f":{worker.pid}")


def test_the_health_port_answers_json_and_only_get_health(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    with _worker(["--health-port", str(port)], env, tmp_path / "worker.log") as worker:
        report = wait_until(lambda: _health(port), "the worker's health")
        assert report["status"] == "ok" and report["unhealthy"] == []
        assert set(report["loops"]) == {"claim", "recorder", "watcher", "listener", "beat"}
        assert report["worker"].endswith(f":{worker.pid}")
        assert _get(port, "/nope")[0] == 404
        status, body = _get(port, "/health", method="POST")
        assert status == 404 and "only GET /health" in body["error"]["message"]
        worker.terminate()
        assert worker.wait(WAIT_S) == 0


def test_a_health_port_in_use_is_one_error_line(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "djs_cli.main", "worker", "--health-port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
    assert result.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is in use" in result.stderr
