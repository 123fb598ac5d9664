"""The model behind test_lifecycle_stateful.py: what the state machine submits (JobSpec and
its strategies), what it expects of each job (ModelJob), and the checks of one job's
`GET /jobs/{id}` against that expectation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests import scripted

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
