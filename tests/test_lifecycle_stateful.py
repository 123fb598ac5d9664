"""A Hypothesis state machine for the job lifecycle, driven over the HTTP API.

Random sequences of submissions (per-attempt plans of ok, fail, fatal and hang steps; fixed or
exponential-with-jitter backoff; optional delay), in-process burst runs of a real `Runner`,
and the admin verbs (retry, cancel, promote, pause/resume, clean) go through
`chalice.test.Client` to real Postgres and Redis. A model predicts every job's status, attempts,
fail_reason and attempt history; after every step these invariants are checked against
`GET /jobs/{id}` and direct SQL:

* the attempts of a job's current budget (since its last admin retry) never exceed max_attempts;
* a job leaves completed, failed or cancelled only through an admin retry this test issued;
* `failed` holds exactly the exhausted, non-retryable, timed-out-on-the-last-attempt and
  cancelled-while-active jobs, and each fail_reason agrees with the attempt history;
* every retry started inside its backoff envelope (never early, not absurdly late), and a
  delayed submission never ran before its run_at;
* after a burst on an unpaused queue nothing is active or pending, and nothing delayed is due.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import hypothesis
from chalice.test import Client
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from common.runner import Runner
from common.services import Services
from tests import scripted
from tests.conftest import post_json
from tests.lifecycle_model import (
    CLEAN_BY,
    HANG_TIMEOUT_S,
    JOB_SPECS,
    TERMINAL,
    WAITING,
    JobSpec,
    ModelJob,
    check_budget,
    check_delays,
    check_events,
    check_fail_reason,
    check_model,
    ts,
)

BURST_LIMIT_S = 30.0

SETTINGS = hypothesis.settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- the machine ------------------------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self, services: Services, client: Client) -> None:
        super().__init__()
        self.services = services
        self.client = client
        self.model: dict[int, ModelJob] = {}
        self.paused = False
        self._reset()

    def _reset(self) -> None:
        """A clean slate per example: no jobs, no queue settings, no Redis keys."""
        with self.services.store.connection() as conn:
            conn.execute("TRUNCATE jobs, job_attempts, job_events, queues")
        redis = self.services.queue.redis
        keys = list(redis.scan_iter(match=f"{self.services.settings.redis_prefix}:*"))
        if keys:
            redis.delete(*keys)
        scripted.STARTS.clear()

    # --- helpers ------------------------------------------------------------------------

    def _sql(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        with self.services.store.connection() as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def _post(self, path: str, body: Any = None) -> tuple[int, Any]:
        if body is None:
            response = self.client.http.post(path)
        else:
            response = post_json(self.client, path, body)
        return response.status_code, json.loads(response.body)

    def _live(self) -> list[ModelJob]:
        return [j for j in self.model.values() if not j.removed]

    def _burst(self, during: Callable[[], None] | None = None) -> Runner:
        """Run a burst runner to the end (in a thread, so `during` can act meanwhile)."""
        runner = self.services.runner(
            scripted.registry,
            upkeep=[],
            listen=False,
            burst=True,
            poll_interval_s=0.02,
            concurrency=8,
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                runner.run()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name="stateful-burst")
        thread.start()
        try:
            if during is not None:
                during()
        finally:
            thread.join(BURST_LIMIT_S)
            if thread.is_alive():
                runner.stop()
                thread.join(BURST_LIMIT_S)
        assert not thread.is_alive(), "the burst runner never finished"
        assert not errors, errors
        return runner

    def _check_settled(self) -> None:
        """After a burst on an unpaused queue: nothing active, pending, or delayed and due."""
        stuck = self._sql(
            "SELECT id, status::text AS status, run_at, run_at > now() AS future FROM jobs"
            " WHERE status IN ('active', 'pending', 'delayed')"
        )
        stuck = [r for r in stuck if not (r["status"] == "delayed" and r["future"])]
        assert not stuck, f"left runnable after a burst: {stuck}"

    def _check_processed(self, runner: Runner, attempts_before: int) -> None:
        expected = self._attempts_total() - attempts_before
        assert runner.processed == expected, (
            f"the burst recorded {runner.processed} attempts; the model expects {expected}: "
            f"{[(j.id, j.plan, j.max_attempts, j.status) for j in self._live()]}"
        )

    def _attempts_total(self) -> int:
        return sum(j.attempts for j in self.model.values())

    def _hang_next(self) -> list[int]:
        return sorted(
            j.id for j in self._live() if j.status in WAITING and j.step(j.attempts + 1) == "hang"
        )

    def _wait_until_active(self, job_id: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = self._sql("SELECT status::text AS status FROM jobs WHERE id = %s", (job_id,))
            if rows and rows[0]["status"] == "active":
                return True
            time.sleep(0.005)
        return False

    # --- rules ----------------------------------------------------------------------------

    def _submit(self, spec: JobSpec) -> int:
        fields: dict[str, Any] = {
            "type": "scripted",
            "payload": {"plan": spec.plan},
            "attempts": spec.attempts,
            "backoff": spec.backoff,
        }
        if "hang" in spec.plan:
            fields["timeout_s"] = HANG_TIMEOUT_S
        if spec.delay_ms is not None:
            fields["delay_ms"] = spec.delay_ms
        code, created = self._post("/jobs", fields)
        assert code == 201, created
        assert created["status"] == ("delayed" if spec.delay_ms else "pending"), created
        due = ts(created["run_at"]) if spec.delay_ms else None
        job = ModelJob(
            created["id"], spec.plan, spec.attempts, dict(spec.backoff), created["status"], due
        )
        self.model[job.id] = job
        return job.id

    @initialize(target=jobs, specs=st.lists(JOB_SPECS, min_size=1, max_size=4))
    def seed(self, specs: list[JobSpec]) -> MultipleResults[int]:
        return multiple(*(self._submit(spec) for spec in specs))

    @rule(target=jobs, spec=JOB_SPECS)
    def submit(self, spec: JobSpec) -> int:
        return self._submit(spec)

    @rule()
    def burst(self) -> None:
        before = self._attempts_total()
        runner = self._burst()
        if self.paused:
            assert runner.processed == 0, "a paused queue's jobs ran"
            return
        for job in self._live():
            job.run_to_end()
        self._check_settled()
        self._check_processed(runner, before)

    @precondition(lambda self: not self.paused and bool(self._hang_next()))
    @rule(data=st.data())
    def burst_and_cancel_while_active(self, data: st.DataObject) -> None:
        """Cancel a job from outside while a burst runs it (its next step hangs)."""
        job = self.model[data.draw(st.sampled_from(self._hang_next()), label="job")]
        answers: list[tuple[int, Any]] = []

        def cancel_once_active() -> None:
            if self._wait_until_active(job.id, 5.0):
                answers.append(self._post(f"/jobs/{job.id}/cancel"))

        before = self._attempts_total()
        runner = self._burst(during=cancel_once_active)
        code = answers[0][0] if answers else None
        if code == 202:
            assert answers[0][1]["cancel_requested"] is True, answers
        elif code == 200:
            assert answers[0][1]["status"] == "cancelled", answers
        [row] = self._sql("SELECT attempts FROM jobs WHERE id = %s", (job.id,))
        for other in self._live():
            if other is not job:
                other.run_to_end()
        job.settle_cancel(code, row["attempts"])
        self._check_settled()
        self._check_processed(runner, before)

    @rule(job_id=jobs)
    def retry(self, job_id: int) -> None:
        job = self.model[job_id]
        code, answer = self._post(f"/jobs/{job_id}/retry")
        if job.removed:
            assert code == 404, answer
        elif job.status not in TERMINAL:
            assert code == 409, answer
        else:
            assert code == 200 and answer["status"] == "pending", answer
            assert answer["attempts_total"] == job.attempts, answer
            job.admin_retry()

    @rule(job_id=jobs)
    def cancel(self, job_id: int) -> None:
        job = self.model[job_id]
        code, answer = self._post(f"/jobs/{job_id}/cancel")
        if job.removed:
            assert code == 404, answer
        elif job.status in WAITING:
            assert code == 200 and answer["status"] == "cancelled", answer
            job.status = "cancelled"
        else:
            assert code == 409, answer

    @rule(job_id=jobs)
    def promote(self, job_id: int) -> None:
        job = self.model[job_id]
        code, answer = self._post(f"/jobs/{job_id}/promote")
        if job.removed:
            assert code == 404, answer
        elif job.status == "delayed":
            assert code == 200 and answer["status"] == "pending", answer
            job.status, job.due_at = "pending", None
        else:
            assert code == 409, answer

    @precondition(lambda self: not self.paused)
    @rule()
    def pause(self) -> None:
        code, answer = self._post("/queues/default/pause")
        assert code == 200 and answer["paused"] is True, answer
        self.paused = True

    @precondition(lambda self: self.paused)
    @rule()
    def resume(self) -> None:
        code, answer = self._post("/queues/default/resume")
        assert code == 200 and answer["paused"] is False, answer
        self.paused = False

    @rule(status=st.sampled_from(["completed", "failed"]), how=CLEAN_BY)
    def clean(self, status: str, how: dict[str, int]) -> None:
        rows = self._sql(
            "SELECT id, finished_at, now() AS now FROM jobs WHERE queue = 'default'"
            " AND status = %s::job_status ORDER BY finished_at DESC, id DESC",
            (status,),
        )
        assert {r["id"] for r in rows} == {j.id for j in self._live() if j.status == status}
        assert all(r["finished_at"] is not None for r in rows), rows
        [before] = self._sql("SELECT now() AS now")
        code, answer = self._post("/queues/default/clean", {"status": status, **how})
        assert code == 200, answer
        [after] = self._sql("SELECT now() AS now")
        ids = [r["id"] for r in rows]
        if "keep" in how:
            must = may = set(ids[how["keep"] :])
        else:
            age = timedelta(seconds=how["age_s"])
            must = {r["id"] for r in rows if r["finished_at"] < before["now"] - age}
            may = {r["id"] for r in rows if r["finished_at"] < after["now"] - age}
        left = {r["id"] for r in self._sql("SELECT id FROM jobs WHERE id = ANY(%s)", (ids,))}
        gone = set(ids) - left
        assert must <= gone <= may, (how, must, gone, may)
        assert answer["removed"] == len(gone), (answer, gone)
        for job_id in gone:
            self.model[job_id].removed = True

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def every_job_agrees(self) -> None:
        rows = self._sql("SELECT id, status::text AS status, attempt_offset FROM jobs")
        by_id = {r["id"]: r for r in rows}
        assert set(by_id) == {j.id for j in self._live()}, (sorted(by_id), self.model)
        assert not [r for r in rows if r["status"] == "active"], "active between steps"
        for job in self.model.values():
            response = self.client.http.get(f"/jobs/{job.id}")
            if job.removed:
                assert response.status_code == 404, response.body
                continue
            assert response.status_code == 200, response.body
            data = json.loads(response.body)
            check_budget(job, data, by_id[job.id]["attempt_offset"])
            check_events(job, data)
            check_fail_reason(job, data)
            check_delays(job, data)
            check_model(job, data)

    @invariant()
    def queue_counts_agree(self) -> None:
        queues = json.loads(self.client.http.get("/queues").body)["queues"]
        counts = next((q["counts"] for q in queues if q["name"] == "default"), {})
        assert {s: n for s, n in counts.items() if n} == dict(
            Counter(j.status for j in self._live())
        )
        paused = next((q["paused"] for q in queues if q["name"] == "default"), False)
        assert paused is self.paused


def test_job_lifecycle_state_machine(services: Services, client: Client) -> None:
    run_state_machine_as_test(
        lambda: LifecycleMachine(services, client),  # type: ignore[arg-type,return-value]
        settings=SETTINGS,
    )
