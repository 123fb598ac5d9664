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

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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

TERMINAL = frozenset({"completed", "failed", "cancelled"})
WAITING = frozenset({"pending", "delayed"})
# The error each plan step leaves in its attempt row (a hang is cut off by its timeout).
ERRORS: dict[str, str | None] = {
    "ok": None,
    "fail": "RuntimeError",
    "fatal": "NonRetryableError",
    "hang": "JobTimeout",
}
HANG_TIMEOUT_S = 0.2
LATE_SLACK = timedelta(seconds=1)  # bursts are sequential; a retry may start this late
BURST_LIMIT_S = 30.0
# Every (from_status, to_status, cause) this test can legitimately produce (no janitor runs).
ALLOWED_MOVES = {
    (None, "pending", "api"),
    (None, "delayed", "api"),
    ("pending", "active", "runner"),
    ("delayed", "active", "runner"),
    ("active", "completed", "runner"),
    ("active", "failed", "runner"),
    ("active", "delayed", "runner"),
    ("active", "pending", "runner"),
    ("pending", "cancelled", "api"),
    ("delayed", "cancelled", "api"),
    ("delayed", "pending", "api"),
    *((status, "pending", "api") for status in TERMINAL),
}

STEPS = st.sampled_from(["ok", "fail", "fatal", "hang", "ok", "fail"])
PLANS = st.lists(STEPS, min_size=1, max_size=3)
FIXED = {"type": "fixed", "delay_ms": 1, "max_delay_ms": None, "jitter": 0.0}
EXPONENTIAL = st.fixed_dictionaries(
    {
        "type": st.just("exponential"),
        "delay_ms": st.integers(5, 40),
        "max_delay_ms": st.none() | st.integers(10, 60),
        "jitter": st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0.0, 1.0),
    }
)
BACKOFFS = st.just(FIXED) | EXPONENTIAL
DELAYS = st.none() | st.sampled_from([150, 400])


@dataclass(frozen=True)
class JobSpec:
    plan: list[str]
    attempts: int
    backoff: dict[str, Any]
    delay_ms: int | None


JOB_SPECS = st.builds(
    JobSpec, plan=PLANS, attempts=st.integers(1, 3), backoff=BACKOFFS, delay_ms=DELAYS
)
CLEAN_BY = st.builds(lambda n: {"keep": n}, st.integers(0, 3)) | st.builds(
    lambda s: {"age_s": s}, st.sampled_from([0, 1, 3600])
)

SETTINGS = hypothesis.settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def envelope_ms(backoff: dict[str, Any], n: int) -> tuple[int, float]:
    """(shortest, longest) delay before attempt n+1 of a budget, as lifecycle.backoff_ms."""
    full = float(backoff["delay_ms"])
    if backoff["type"] == "exponential":
        full *= 2 ** (n - 1)
    if backoff["max_delay_ms"] is not None:
        full = min(full, float(backoff["max_delay_ms"]))
    return int(full * (1.0 - float(backoff["jitter"]) * 1.0)), full


@dataclass
class ModelJob:
    """What the test expects of one job."""

    id: int
    plan: list[str]
    max_attempts: int
    backoff: dict[str, Any]
    status: str
    due_at: datetime | None  # a submitted delay, until an admin verb makes it moot
    attempts: int = 0
    offsets: list[int] = field(default_factory=lambda: [0])  # attempts before each budget
    fail_reason: str | None = None
    rows: list[tuple[frozenset[str | None], str]] = field(default_factory=list)
    retries: int = 0  # admin retries this test issued
    cancel_requested: bool = False  # a cancel found it active (202), in this budget
    removed: bool = False

    @property
    def offset(self) -> int:
        return self.offsets[-1]

    def step(self, attempt: int) -> str:
        return self.plan[min(attempt, len(self.plan)) - 1]

    def _finish(self, status: str, reason: str | None, errors: set[str | None]) -> None:
        self.status, self.fail_reason = status, reason
        self.rows.append((frozenset(errors), status))

    def run_attempt(self) -> None:
        """One attempt as the runner makes it, with nobody interfering."""
        self.attempts += 1
        step = self.step(self.attempts)
        error = ERRORS[step]
        if step == "ok":
            self._finish("completed", None, {None})
        elif step == "fatal":
            self._finish("failed", "non_retryable", {error})
        elif self.attempts - self.offset >= self.max_attempts:
            self._finish("failed", "timeout" if step == "hang" else "exhausted", {error})
        else:
            self.status = "delayed"  # or pending, when a jittered delay rounds to 0 ms
            self.rows.append((frozenset({error}), "retried"))

    def run_to_end(self) -> None:
        while self.status in WAITING:
            self.run_attempt()

    def settle_cancel(self, code: int | None, attempts_seen: int) -> None:
        """A burst during which this job was cancelled once it was seen active.

        The cancel's answer tells where it landed: 202 in the last attempt (which then fails
        with reason cancelled unless it succeeded), 200 while a retry waited, 409 after the end.
        """
        if code in (None, 409):
            self.run_to_end()
            return
        for _ in range(attempts_seen - self.attempts - 1):
            self.run_attempt()
            assert self.status in WAITING, f"job {self.id}: ran past the end of its plan"
        if code == 200:
            self.run_attempt()
            assert self.status in WAITING, f"job {self.id}: cancelled (200) after it ended"
            self.status = "cancelled"
            return
        assert code == 202, code
        self.cancel_requested = True
        self.attempts += 1
        step = self.step(self.attempts)
        if step == "ok":
            self._finish("completed", None, {None})
        else:  # a hang may also end as the handler's own "cancellation seen" RuntimeError
            self._finish("failed", "cancelled", {ERRORS[step], "RuntimeError"})

    def admin_retry(self) -> None:
        self.status, self.fail_reason, self.cancel_requested = "pending", None, False
        self.offsets.append(self.attempts)
        self.retries += 1
        self.due_at = None


# --- invariants on one job, from GET /jobs/{id} ----------------------------------------------


def check_budget(job: ModelJob, data: dict[str, Any], sql_offset: int) -> None:
    history = data["history"]
    assert [h["attempt"] for h in history] == list(range(1, data["attempts_total"] + 1))
    assert sql_offset == job.offset, (job.id, sql_offset, job.offsets)
    used = sum(1 for h in history if h["attempt"] > job.offset)
    assert data["max_attempts"] == job.max_attempts
    assert 0 <= used <= data["max_attempts"], f"job {job.id}: {used} attempts in its budget"
    # Every attempt row is one run of the handler: nothing ran twice or unrecorded.
    assert len(scripted.STARTS.get(job.id, [])) == data["attempts_total"], job.id
    unfinished = [h["attempt"] for h in history if h["finished_at"] is None]
    assert not unfinished, f"job {job.id}: attempts {unfinished} never finished"


def check_events(job: ModelJob, data: dict[str, Any]) -> None:
    events = data["events"]
    moves = [(e["from_status"], e["to_status"], e["cause"]) for e in events]
    assert moves and moves[0][0] is None, moves
    for (_, to, _), (frm, _, _) in itertools.pairwise(moves):
        assert frm == to, f"job {job.id}: broken event chain {moves}"
    assert moves[-1][1] == data["status"], moves
    illegal = [m for m in moves if m not in ALLOWED_MOVES]
    assert not illegal, f"job {job.id}: illegal moves {illegal} in {moves}"
    # Every way out of a terminal state (to pending, by the api) is one of our retries.
    exits = [m for m in moves if m[0] in TERMINAL]
    assert len(exits) == job.retries, f"job {job.id}: {exits} but {job.retries} retries issued"
    times = [ts(e["at"]) for e in events]
    assert times == sorted(times), events


def expected_fail_reason(error_type: str | None, used: int, job: ModelJob) -> str | None:
    """Why a job whose last attempt raised error_type, `used` attempts into its budget, fails."""
    if job.cancel_requested:
        return "cancelled"
    if error_type == "NonRetryableError":
        return "non_retryable"
    if used < job.max_attempts:
        return None  # attempts left and a retryable error: it must not be failed
    return "timeout" if error_type == "JobTimeout" else "exhausted"


def check_fail_reason(job: ModelJob, data: dict[str, Any]) -> None:
    status, reason = data["status"], data["fail_reason"]
    current = [h for h in data["history"] if h["attempt"] > job.offset]
    if status != "failed":
        assert reason is None, f"job {job.id} is {status} with fail_reason {reason}"
        if status in WAITING and current:
            assert current[-1]["outcome"] == "retried" and len(current) < job.max_attempts
        return
    assert current, f"job {job.id} failed without an attempt in its budget"
    last = current[-1]
    assert last["outcome"] == "failed", (job.id, last)
    expected = expected_fail_reason(last["error_type"], len(current), job)
    assert expected is not None and reason == expected, (
        f"job {job.id}: failed/{reason} after {len(current)}/{job.max_attempts} attempts, "
        f"last error {last['error_type']}; expected {expected}"
    )


def check_delays(job: ModelJob, data: dict[str, Any]) -> None:
    history = data["history"]
    for prev, nxt in itertools.pairwise(history):
        if prev["attempt"] in job.offsets:
            continue  # an admin retry came in between: no backoff applies
        assert prev["outcome"] == "retried", (job.id, prev)
        n = prev["attempt"] - max(o for o in job.offsets if o < prev["attempt"])
        low, high = envelope_ms(job.backoff, n)
        gap = ts(nxt["started_at"]) - ts(prev["finished_at"])
        assert gap >= timedelta(milliseconds=low), (
            f"job {job.id}: attempt {nxt['attempt']} started {gap} after attempt "
            f"{prev['attempt']} failed; the backoff {job.backoff} allows no less than {low} ms"
        )
        assert gap <= timedelta(milliseconds=high) + LATE_SLACK, (job.id, gap, high)
    if job.due_at is not None and history:
        assert ts(history[0]["started_at"]) >= job.due_at, (job.id, history[0], job.due_at)


def check_model(job: ModelJob, data: dict[str, Any]) -> None:
    seen = (data["status"], data["fail_reason"], data["attempts_total"], data["cancel_requested"])
    expected = (job.status, job.fail_reason, job.attempts, job.cancel_requested)
    assert seen == expected, f"job {job.id} (plan {job.plan}): {seen}, expected {expected}"
    rows = [(h["error_type"], h["outcome"]) for h in data["history"]]
    assert len(rows) == len(job.rows), (job.id, rows, job.rows)
    for attempt, ((error, outcome), (errors, want)) in enumerate(
        zip(rows, job.rows, strict=True), 1
    ):
        assert error in errors and outcome == want, (job.id, attempt, rows, job.rows)
    if job.status == "completed":
        assert data["result"]["attempt"] == job.attempts, data["result"]
    assert (data["finished_at"] is not None) == (job.status in TERMINAL), (job.id, data)
    assert (data["run_at"] is not None) or job.status != "delayed", (job.id, data)


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
