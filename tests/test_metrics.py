"""Prometheus metrics, parsed with prometheus_client's own parser from a running `djs api`
and a running `djs worker --health-port` after real jobs: completed, failed (with their
reasons) and retried. Depth equals the store's counts, runners-up the registry's."""

from __future__ import annotations

import http.client
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import OTHER, LabelCap
from common.metrics_queues import QueueCollector
from common.models import JOB_STATUSES, JobSubmission
from common.services import Services
from tests.helpers import (
    WAIT_S,
    free_port,
    run_djs,
    start_api,
    start_djs,
    stop,
    wait_for_health,
    wait_until,
)
from tests.keys import make_key

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
QUEUE = "metered"


def _get(port: int, path: str, key: str | None = None) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read().decode()
    finally:
        conn.close()


def _post(port: int, key: str, path: str, body: Any) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _scrape(port: int, key: str | None = None) -> Samples:
    status, content_type, text = _get(port, "/metrics", key)
    assert status == 200, text
    assert content_type.startswith("text/plain"), content_type
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@contextmanager
def _worker(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = start_djs(
        ["worker", "--queues", QUEUE, "--health-port", str(port), "--concurrency", "4"], env
    )
    try:
        wait_for_health(port, timeout_s=WAIT_S)
        yield process
    finally:
        stop(process)


def _submissions() -> list[dict[str, Any]]:
    fast = {"type": "fixed", "delay_ms": 0}
    return [
        *({"type": "echo", "queue": QUEUE, "payload": {"n": n}} for n in range(3)),
        {"type": "fail", "queue": QUEUE, "payload": {"fatal": True}, "attempts": 3},
        # Fails twice: the first failure is a retry, the second exhausts its attempts.
        {"type": "fail", "queue": QUEUE, "attempts": 2, "backoff": fast},
    ]


def test_api_and_runner_metrics_after_real_jobs(services: Services, env: dict[str, str]) -> None:
    url = services.settings.database_url
    scraper, submitter = make_key(url, "metrics"), make_key(url, "submitter")
    api_port, api = start_api(env)
    try:
        for job in _submissions():
            assert _post(api_port, submitter, "/jobs", job) == 201
        before = _scrape(api_port, scraper)
        submitted = "djs_jobs_submitted_total"
        assert _value(before, submitted, queue=QUEUE, type="echo") == 3
        assert _value(before, submitted, queue=QUEUE, type="fail") == 2
        post = "djs_http_requests_total"
        assert _value(before, post, method="POST", route="/jobs", status="201") == 5
        assert _value(before, "djs_queue_jobs", queue=QUEUE, state="pending") == 5
        assert (_value(before, "djs_queue_oldest_due_age_seconds", queue=QUEUE) or 0) > 0
        assert _value(before, "djs_runners_up", queue=QUEUE) == 0

        probe = free_port()
        with _worker(env, probe):
            counts = wait_until(lambda: _settled(services), "every job finished")
            assert counts == {"completed": 3, "failed": 2}
            runner = _scrape(probe)  # the probe port: no key
            wait_until(
                lambda: services.store.queue_overview(None).runners(QUEUE) == 1, "registered"
            )
            after = _scrape(api_port, scraper)
            status, _, ready = _get(probe, "/ready")
            assert status == 200 and json.loads(ready)["status"] == "ok"
        _assert_runner_metrics(runner)
        _assert_depth_is_the_stores(services, after)
        assert _value(after, "djs_runners_up", queue=QUEUE) == 1
        assert _value(after, submitted, queue=QUEUE, type="echo") == 3  # not counted twice
    finally:
        stop(api)


def _settled(services: Services) -> dict[str, int] | None:
    found = services.store.queue_overview(None).counts.get(QUEUE, {})
    done = {s: n for s, n in found.items() if s in ("completed", "failed") and n}
    return done if sum(done.values()) == 5 else None


def _assert_runner_metrics(samples: Samples) -> None:
    echo, fail = {"queue": QUEUE, "type": "echo"}, {"queue": QUEUE, "type": "fail"}
    assert _value(samples, "djs_jobs_completed_total", **echo) == 3
    assert _value(samples, "djs_jobs_completed_total", **fail) is None
    failed = "djs_jobs_failed_total"
    assert _value(samples, failed, **fail, reason="non_retryable") == 1
    assert _value(samples, failed, **fail, reason="exhausted") == 1
    assert _value(samples, "djs_jobs_retried_total", **fail) == 1
    assert _value(samples, "djs_jobs_retried_total", **echo) is None
    duration = "djs_attempt_duration_seconds_count"
    assert _value(samples, duration, **echo) == 3
    assert _value(samples, duration, **fail) == 3  # 1 + 2 attempts
    inf = _value(samples, "djs_attempt_duration_seconds_bucket", **echo, le="+Inf")
    assert inf == 3
    # Five first attempts: the retry's second attempt is not a run-at -> start gap.
    assert _value(samples, "djs_schedule_lag_seconds_count", queue=QUEUE) == 5
    assert (_value(samples, "djs_schedule_lag_seconds_sum", queue=QUEUE) or 0) > 0
    assert _value(samples, "djs_leases_expired_total", queue=QUEUE) is None


def _assert_depth_is_the_stores(services: Services, samples: Samples) -> None:
    seen = services.store.queue_overview(None)
    for queue in seen.names:
        for state in JOB_STATUSES:
            want = seen.counts.get(queue, {}).get(state, 0)
            assert _value(samples, "djs_queue_jobs", queue=queue, state=state) == want
    assert _value(samples, "djs_queue_jobs", queue=QUEUE, state="completed") == 3
    assert _value(samples, "djs_queue_jobs", queue=QUEUE, state="failed") == 2
    assert _value(samples, "djs_queue_oldest_due_age_seconds", queue=QUEUE) == 0
    assert _value(samples, "djs_queue_metrics_up") == 1


def test_only_a_metrics_or_admin_key_scrapes(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    url = services.settings.database_url
    made = run_djs(["keys", "create", "--role", "metrics", "--name", "scraper"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    scraper, submitter = made.stdout.strip(), make_key(url, "submitter")
    admin = make_key(url, "admin")
    port, api = start_api(env)
    try:
        assert _get(port, "/metrics")[0] == 401
        status, _, body = _get(port, "/metrics", submitter)
        assert status == 403 and json.loads(body)["error"]["code"] == "forbidden"
        assert _get(port, "/metrics", admin)[0] == 200
        for path in ("/queues", "/jobs", "/me", "/stats"):
            assert _get(port, path, scraper)[0] == 403, path
        assert _get(port, "/ready")[0] == 200  # public, as /health is
        samples = _scrape(port, scraper)
        # The refusals were counted by their route template, never by the raw path.
        requests = "djs_http_requests_total"
        assert _value(samples, requests, method="GET", route="/metrics", status="401") == 1
        assert _value(samples, requests, method="GET", route="/metrics", status="403") == 1
        assert _get(port, "/jobs/12345", scraper)[0] == 403
        assert _get(port, "/no/such/route", scraper)[0] == 404
        again = _scrape(port, scraper)
        assert _value(again, requests, method="GET", route="/jobs/{raw_id}", status="403") == 1
        assert _value(again, requests, method="GET", route="unmatched", status="404") == 1
        labels = {dict(k[1]).get("route") for k in again if k[0] == requests}
        assert "/jobs/12345" not in labels and "/no/such/route" not in labels
    finally:
        stop(api)


def test_every_api_process_reports_the_whole_server(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    url = services.settings.database_url
    scraper, submitter = make_key(url, "metrics"), make_key(url, "submitter")
    port = free_port()
    # A directory of the operator's is used (and kept), so the test can see who wrote.
    shared = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    api = start_djs(["api", "--port", str(port), "--processes", "2"], shared)
    try:
        wait_for_health(port, timeout_s=WAIT_S)
        # One connection each: the kernel spreads them over both processes, though not
        # evenly on a busy machine; so post (a bounded number) until both have counted.
        posted = 0
        while posted < 12 or (len(_writers(tmp_path)) < 2 and posted < 400):
            assert _post(port, submitter, "/jobs", {"type": "echo", "queue": QUEUE}) == 201
            posted += 1
        assert len(_writers(tmp_path)) == 2, _writers(tmp_path)  # both processes counted
        for _ in range(6):  # whichever process answers, the counts are the whole server's
            samples = _scrape(port, scraper)
            found = _value(samples, "djs_jobs_submitted_total", queue=QUEUE, type="echo")
            assert found == posted
    finally:
        stop(api)


def _writers(multiproc_dir: Path) -> set[str]:
    """The pids that wrote counters in a multiprocess directory (counter_<pid>.db)."""
    return {path.stem.rsplit("_", 1)[-1] for path in multiproc_dir.glob("counter_*.db")}


def test_user_named_labels_are_capped() -> None:
    cap = LabelCap(2)
    assert cap("a", "x") == ("a", "x")
    assert cap("b", "y") == ("b", "y")
    assert cap("c", "z") == (OTHER, OTHER)  # a third set folds into `other`
    assert cap("a", "x") == ("a", "x")  # the first ones keep their names


def _counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_expired_leases_and_reconciler_pushes_are_counted(services: Services) -> None:
    """In this process: the janitor's recovery and the reconciler's pushes, as a runner
    process counts them (deltas: the registry is this test process's)."""
    queue = "metered-upkeep"
    manager = services.manager
    leases, pushes = "djs_leases_expired_total", "djs_reconciler_pushes_total"
    before = _counted(leases, queue=queue), _counted(pushes, queue=queue)
    manager.enqueue([JobSubmission(type="echo", queue=queue)])
    claim = manager.claim(queue, 1, "metrics-test", lease_s=0.05, idle=True)
    assert len(claim.jobs) == 1
    wait_until(lambda: manager.recover_stalled(10) == 1, "the lease to expire and be recovered")
    assert _counted(leases, queue=queue) == before[0] + 1
    # Written to Postgres only: Redis never heard of these two, so the reconciler pushes them.
    for _ in range(2):
        services.store.enqueue(JobSubmission(type="echo", queue=queue))
    assert manager.reconcile_queues([queue]) == 2
    assert _counted(pushes, queue=queue) == before[1] + 2


def test_queues_past_the_cap_are_summed_into_other(services: Services) -> None:
    for queue, n in (("cap-a", 1), ("cap-b", 2), ("cap-c", 3)):
        services.manager.enqueue([JobSubmission(type="echo", queue=queue) for _ in range(n)])
    families = {f.name: f for f in QueueCollector(services.store, max_queues=1).collect()}
    depth = {
        (s.labels["queue"], s.labels["state"]): s.value for s in families["djs_queue_jobs"].samples
    }
    assert depth[("cap-a", "pending")] == 1
    assert depth[(OTHER, "pending")] == 5  # cap-b and cap-c
    assert {queue for queue, _ in depth} == {"cap-a", OTHER}
