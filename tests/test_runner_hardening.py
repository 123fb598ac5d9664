"""The runner against handlers that ignore cancellation, in-process on real Postgres and Redis:
a cancelled job stays cancelled across a shutdown, a cancel frees its slot, leaked threads are
bounded (the runner asks to be replaced), and health() names a loop that keeps dying."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

from common.handlers import HandlerRegistry
from common.models import JobSubmission
from common.runner import Runner, RunResult
from common.runner import health as runner_health
from common.services import Services
from djs_cli.health_probe import HealthProbe
from tests.helpers import running, wait_until

WAIT_S = 30.0  # an upper bound for things that take milliseconds on an idle machine


class _App:
    def lambda_function(self, name: str) -> Any:
        return lambda func: func


class Stubborn:
    """A handler that ignores `context.cancelled`: it returns only once the test opens the
    gate, so its thread can leak for as long as the test wants."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls: list[int] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.calls.append(event["job_id"])
        self.started.set()
        self.gate.wait(WAIT_S * 4)
        return "finished at last"


def _registry(stubborn: Stubborn) -> HandlerRegistry:
    reg = HandlerRegistry()
    reg.handler(_App(), "stubborn")(stubborn)
    reg.handler(_App(), "echo")(lambda event, context: event["payload"])
    return reg


def _submit(services: Services, job_type: str, **fields: Any) -> int:
    return services.manager.enqueue([JobSubmission(type=job_type, **fields)])[0].job.id


def _runner(services: Services, reg: HandlerRegistry, **options: Any) -> Runner:
    options = {"upkeep": [], "listen": False, "concurrency": 1, "poll_interval_s": 0.05, **options}
    return services.runner(reg, **options)


def test_a_job_cancelled_while_active_is_failed_not_released_at_shutdown(
    services: Services,
) -> None:
    stubborn = Stubborn()
    reg = _registry(stubborn)
    job_id = _submit(services, "stubborn", attempts=3)
    # A long cancel grace: the shutdown, not the abandonment, meets the cancelled job.
    runner = _runner(services, reg, grace_s=0.2, cancel_grace_s=300)
    with running(runner, WAIT_S):
        assert stubborn.started.wait(WAIT_S)
        assert services.manager.cancel_one(job_id).requested
    job = services.store.get(job_id)
    assert job is not None and (job.status, job.fail_reason) == ("failed", "cancelled")
    assert job.finished_at is not None and job.cancel_requested
    assert [(h.outcome, h.error_type) for h in job.history] == [("failed", "Cancelled")]
    assert services.queue.depth("default") == {"wait": 0, "delayed": 0, "active": 0}
    stubborn.gate.set()
    again = _runner(services, reg, burst=True)
    again.run()
    assert again.processed == 0 and stubborn.calls == [job_id]  # it never ran again


def test_a_shutdown_still_releases_the_jobs_nobody_cancelled(services: Services) -> None:
    stubborn = Stubborn()
    job_id = _submit(services, "stubborn", attempts=3)
    runner = _runner(services, _registry(stubborn), grace_s=0.2)
    with running(runner, WAIT_S):
        assert stubborn.started.wait(WAIT_S)
    stubborn.gate.set()
    job = services.store.get(job_id)
    assert job is not None and job.status == "pending" and job.fail_reason is None
    assert [h.outcome for h in job.history] == ["released"]


def test_a_handler_that_ignores_a_cancel_is_abandoned_and_its_slot_runs_the_next_job(
    services: Services,
) -> None:
    stubborn = Stubborn()
    hung = _submit(services, "stubborn", attempts=3)
    runner = _runner(services, _registry(stubborn), cancel_grace_s=0.2)
    with running(runner, WAIT_S):
        assert stubborn.started.wait(WAIT_S)
        after = _submit(services, "echo", payload={"n": 1})
        services.manager.cancel_one(hung)
        wait_until(lambda: services.store.status_of(after) == "completed", "the next job", WAIT_S)
        # One slot, and the stubborn handler still holds its thread: the slot was freed.
        assert not stubborn.gate.is_set() and runner.health()["leaked_threads"] == 1
    stubborn.gate.set()
    job = services.store.get(hung)
    assert job is not None and (job.status, job.fail_reason) == ("failed", "cancelled")
    [attempt] = job.history
    assert attempt.outcome == "failed" and attempt.error_type == "JobCancelled"
    assert "did not stop within 0.2 s of a cancel request" in (attempt.error_message or "")
    assert "Stack of the handler" in (attempt.traceback or "")
    assert "gate.wait" in (attempt.traceback or "")  # where it hung


def test_past_max_leaked_threads_the_runner_drains_and_asks_to_be_replaced(
    services: Services,
) -> None:
    stubborn = Stubborn()
    ids = [_submit(services, "stubborn", attempts=1, timeout_s=0.2) for _ in range(3)]
    runner = _runner(services, _registry(stubborn), max_leaked_threads=1)
    try:
        result = runner.run()  # returns on its own: no stop(), no burst
        assert result.replace is not None
        assert "2 abandoned handler threads still run" in result.replace
        assert runner.health()["leaked_threads"] == 2
    finally:
        stubborn.gate.set()
    jobs = [services.store.get(i) for i in ids]
    outcomes = sorted((j.status, j.fail_reason) for j in jobs if j)
    # Two leaked, and the third was never claimed: the bound held the threads at two.
    assert outcomes == [("failed", "timeout"), ("failed", "timeout"), ("pending", None)]


def test_a_run_ended_by_stop_needs_no_replacing(services: Services) -> None:
    runner = _runner(services, _registry(Stubborn()), max_leaked_threads=1)
    with running(runner, WAIT_S) as results:
        wait_until(lambda: runner.health()["status"] == "ok", "a healthy runner", WAIT_S)
    assert results == [RunResult(replace=None)]


class _DyingListener:
    """A listener with a bug: it raises at once, every time it is started."""

    def run(self, stop: threading.Event) -> None:
        raise RuntimeError("listener bug")


def _probe(runner: Runner) -> tuple[int, dict[str, Any]]:
    probe = HealthProbe(runner.health, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{probe.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
    finally:
        probe.close()


def test_health_is_ok_for_a_running_runner_and_names_a_loop_that_keeps_dying(
    services: Services,
) -> None:
    healthy = _runner(services, _registry(Stubborn()), listen=True)
    with running(healthy, WAIT_S):
        wait_until(lambda: healthy.health()["status"] == "ok", "a healthy runner", WAIT_S)
        code, body = _probe(healthy)
    assert code == 200 and body["status"] == "ok"
    assert set(body["loops"]) == {"claim", "recorder", "watcher", "listener", "beat"}
    assert all(loop["alive"] and loop["problem"] is None for loop in body["loops"].values())
    dying = Runner(
        services.manager, _registry(Stubborn()), listener=_DyingListener(), poll_interval_s=0.05
    )
    with running(dying, WAIT_S):
        wait_until(lambda: dying.health()["unhealthy"] == ["listener"], "a dying listener", WAIT_S)
        code, body = _probe(dying)
    assert code == 503 and body["unhealthy"] == ["listener"]
    listener = body["loops"]["listener"]
    assert listener["restarts"] >= 3 and listener["last_error"] == "RuntimeError: listener bug"
    assert listener["problem"].startswith("died 3 times within 60 s")


def test_a_runner_that_has_stopped_is_unhealthy(services: Services) -> None:
    runner = _runner(services, _registry(Stubborn()), burst=True)
    runner.run()
    report = runner.health()
    assert report["status"] == "unhealthy"
    assert set(report["unhealthy"]) == {"claim", "recorder", "watcher", "beat"}
    assert report["loops"]["claim"]["problem"] == "not running"


def test_a_loop_silent_far_longer_than_its_interval_is_unhealthy() -> None:
    limit = max(runner_health.STALL_FACTOR * 1.0, runner_health.STALL_FLOOR_S)
    beating = runner_health.LoopState(alive=True, silent_s=limit - 1, interval_s=1.0)
    hung = runner_health.LoopState(alive=True, silent_s=limit + 1, interval_s=1.0)
    assert runner_health.problem(beating) is None
    assert (runner_health.problem(hung) or "").startswith(f"no progress for {limit + 1:.0f} s")
    report = runner_health.report({"watcher": hung, "claim": beating})
    assert (report["status"], report["unhealthy"]) == ("unhealthy", ["watcher"])
