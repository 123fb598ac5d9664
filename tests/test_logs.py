"""Structured logs of real `djs api` and `djs worker` processes: JSON lines, job context,
levels, and secrets kept out of them (common/logs.py, common/redact.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from common.services import Services
from tests.helpers import WAIT_S, Http, free_port, wait_for_health, wait_until

SECRET_PAYLOAD = {"user": "a", "password": "hunter2", "nested": {"Token": "t0ken-zz"}}
SECRETS = ("hunter2", "t0ken-zz")
JOB_FIELDS = ("job_id", "queue", "type", "attempt", "worker")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A djs process whose stderr (the log) is kept apart from its stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "djs_cli.main", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _log_of(process: subprocess.Popen[bytes]) -> list[str]:
    process.terminate()
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate(timeout=30)
    return err.decode(errors="replace").splitlines()


def _parsed(lines: list[str], who: str) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{who} wrote a line that is not JSON: {line!r}") from None
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "msg"} <= record.keys(), line
        assert record["ts"].endswith("+00:00"), line  # ISO-8601, UTC
        records.append(record)
    return records


def _job(http: Http, job_id: int, status: str) -> Any:
    def done() -> Any:
        code, body = http.request("GET", f"/jobs/{job_id}")
        return body if code == 200 and body["status"] == status else None

    return wait_until(done, f"job {job_id} {status}")


@dataclass
class _Run:
    ok: Any  # the completing job as submitted, and as the API showed it at its end
    done: Any
    bad: Any
    failed: Any
    page: Any  # GET /jobs of the queue
    api_lines: list[str]
    worker_lines: list[str]


def _run_two_jobs(env: dict[str, str], admin_key: str) -> _Run:
    """A real djs api (access log on) and djs worker at debug; one job completes, one fails."""
    env = {**env, "DJS_LOG_LEVEL": "debug"}
    port = free_port()
    api = _start(["api", "--host", "127.0.0.1", "--port", str(port), "--access-log"], env)
    worker = _start(
        ["worker", "--import", "tests.logs_handlers", "--queues", "logs", "--concurrency", "2"],
        env,
    )
    try:
        wait_for_health(port, timeout_s=WAIT_S)
        http = Http(port, admin_key)
        code, ok = http.request(
            "POST", "/jobs", {"type": "secret_echo", "queue": "logs", "payload": SECRET_PAYLOAD}
        )
        assert code == 201, ok
        code, bad = http.request(
            "POST", "/jobs", {"type": "kaput", "queue": "logs", "attempts": 1, "payload": {}}
        )
        assert code == 201, bad
        done = _job(http, ok["id"], "completed")
        failed = _job(http, bad["id"], "failed")
        code, page = http.request("GET", "/jobs?queue=logs")
        assert code == 200
        http.close()
    finally:
        api_lines, worker_lines = _log_of(api), _log_of(worker)
    return _Run(ok, done, bad, failed, page, api_lines, worker_lines)


def test_api_and_worker_log_json_lines_with_job_context_and_no_secrets(
    env: dict[str, str], admin_key: str, services: Services
) -> None:
    run = _run_two_jobs(env, admin_key)
    for secret in SECRETS:
        assert not [line for line in run.api_lines + run.worker_lines if secret in line]
    api_log = _parsed(run.api_lines, "djs api")
    worker_log = _parsed(run.worker_lines, "djs worker")
    _check_answers(run, services)
    _check_job_lines(run, worker_log)
    access = [r for r in api_log if r["logger"] == "djs.access"]
    gets = [r for r in access if r["route"] == "/jobs/{raw_id}" and r["method"] == "GET"]
    assert gets and all(r["status"] == 200 and r["key_id"] for r in gets)
    assert all(admin_key not in line for line in run.api_lines)


def _check_answers(run: _Run, services: Services) -> None:
    """The API shows the secrets redacted, to an admin too; the handler had the real ones,
    and Postgres keeps them."""
    answers = json.dumps([run.done, run.failed, run.page])
    for secret in SECRETS:
        assert secret not in answers
    assert run.done["payload"] == {
        "user": "a",
        "password": "[redacted]",
        "nested": {"Token": "[redacted]"},
    }
    assert run.done["result"]["password_len"] == len("hunter2")
    assert run.done["result"]["token"] == "[redacted]"
    [listed] = [job for job in run.page["jobs"] if job["id"] == run.ok["id"]]
    assert listed["payload"]["password"] == "[redacted]"
    stored = services.store.get(run.ok["id"])
    assert stored is not None
    assert stored.payload == SECRET_PAYLOAD
    assert stored.result["token"] == "t0ken-zz"


def _check_job_lines(run: _Run, worker_log: list[dict[str, Any]]) -> None:
    ok, bad = run.ok["id"], run.bad["id"]
    job_lines = [r for r in worker_log if "job_id" in r]
    by_job = {ok: "secret_echo", bad: "kaput"}
    for record in job_lines:
        assert all(field in record for field in JOB_FIELDS), record
        assert (record["queue"], record["attempt"]) == ("logs", 1), record
        assert record["type"] == by_job[record["job_id"]], record
        assert record["worker"] == run.done["worker"], record
    msgs = {(r["job_id"], r["msg"], r["level"]) for r in job_lines}
    assert (ok, "attempt started", "debug") in msgs
    assert (ok, "attempt completed", "info") in msgs
    [failure] = [r for r in job_lines if r["job_id"] == bad and r["level"] == "info"]
    assert failure["msg"] == "attempt failed: ValueError"
    assert failure["error_type"] == "ValueError"
    assert failure["error"] == "kaput on purpose"
    assert failure["duration_ms"] >= 0


def test_warning_level_drops_info_lines(env: dict[str, str], services: Services) -> None:
    from common.models import JobSubmission

    [submitted] = services.manager.enqueue([JobSubmission(type="kaput", queue="quiet", attempts=1)])
    worker = subprocess.run(
        [
            *[sys.executable, "-m", "djs_cli.main", "worker", "--import", "tests.logs_handlers"],
            *["--queues", "quiet", "--burst", "--log-level", "warning"],
        ],
        env={**env, "DJS_LOG_LEVEL": "debug"},  # the flag wins over the setting
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert worker.returncode == 0, worker.stderr
    records = _parsed(worker.stderr.splitlines(), "djs worker")
    assert all(r["level"] in ("warning", "error", "critical") for r in records), records
    job = services.store.get(submitted.job.id)
    assert job is not None and job.status == "failed"  # it ran: its info lines were dropped


def test_the_line_writer_keeps_every_line_in_order_and_writes_them_in_few_writes() -> None:
    import io
    import logging
    import threading

    from common.logs import LineWriter

    class CountingStream(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            CountingStream.writes += 1
            return super().write(text)

    stream = CountingStream()
    writer = LineWriter(stream, window_s=0.05)
    writer.setFormatter(logging.Formatter("%(threadName)s %(message)s"))
    logger = logging.getLogger("djs.test.linewriter")
    logger.propagate = False
    logger.addHandler(writer)
    try:

        def emit(n: int) -> None:
            for i in range(n):
                logger.warning("%d", i)

        threads = [threading.Thread(target=emit, args=(500,), name=f"t{k}") for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Written by its own thread within the window, without a flush.
        wait_until(lambda: stream.getvalue().count("\n") == 4000, WAIT_S)
    finally:
        logger.removeHandler(writer)
    by_thread: dict[str, list[int]] = {}
    for line in stream.getvalue().splitlines():
        name, number = line.split()
        by_thread.setdefault(name, []).append(int(number))
    assert by_thread == {f"t{k}": list(range(500)) for k in range(8)}
    assert CountingStream.writes < 4000 / 10  # many lines per write, not one each


def test_logging_shutdown_writes_what_is_queued() -> None:
    import io
    import logging

    from common.logs import LineWriter

    stream = io.StringIO()
    writer = LineWriter(stream, window_s=60)  # the writer thread would wait a minute
    writer.setFormatter(logging.Formatter("%(message)s"))
    writer.handle(logging.makeLogRecord({"msg": "last words", "levelno": logging.ERROR}))
    logging.shutdown([lambda: writer])  # what runs at exit and before a worker's exec
    assert stream.getvalue() == "last words\n"
