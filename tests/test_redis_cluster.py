"""djs on a real Redis Cluster (DJS_REDIS_CLUSTER; ElastiCache cluster mode): three masters
started here, queues whose keys live on different nodes, real Postgres."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from redis.exceptions import MovedError

from common.dispatch import RedisQueue
from common.models import JobSubmission
from common.ratelimit import TokenBuckets
from common.ratelimit.bucket import bucket_key
from common.readiness import readiness
from common.records import Ready
from common.runner import Runner
from common.services import Services
from common.settings import Settings
from tests.helpers import WAIT_S, free_port, running, wait_until
from tests.redis_cluster import cluster, one_per_node
from worker_app.app import registry

pytestmark = pytest.mark.serial  # starts three redis-server processes for the module


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    with cluster(tmp_path_factory.mktemp("redis-cluster")) as started:
        yield started


@pytest.fixture
def url(ports: list[int]) -> str:
    return f"redis://127.0.0.1:{ports[0]}/0"


@pytest.fixture
def queues(ports: list[int]) -> list[str]:
    """Three queue names whose keys live on three different masters."""
    return one_per_node(ports[0], lambda i: f"q{i}", lambda i: f"q{i}")


@pytest.fixture
def services(settings: Settings, url: str) -> Iterator[Services]:
    """The conftest's Postgres and key prefix, on the cluster."""
    svc = Services.connect(settings.model_copy(update={"redis_url": url, "redis_cluster": True}))
    svc.store.pools.durable.wait(timeout=10)
    yield svc
    svc.close()


def _submit(services: Services, queue: str, n: int = 1, **fields: Any) -> list[int]:
    jobs = [JobSubmission(type="echo", queue=queue, **fields) for _ in range(n)]
    return [s.job.id for s in services.manager.enqueue(jobs)]


def _burst(services: Services, queues: list[str], **kw: Any) -> Runner:
    runner = services.runner(
        registry,
        {q: 1 for q in queues},
        upkeep=[],
        listen=False,
        burst=True,
        poll_interval_s=0.05,
        **kw,
    )
    runner.run()
    return runner


def _job(services: Services, job_id: int) -> Any:
    job = services.store.get(job_id)
    assert job is not None
    return job


def _completed_once(services: Services, ids: list[int]) -> None:
    for job_id in ids:
        job = _job(services, job_id)
        assert (job.status, job.attempts_total, len(job.history)) == ("completed", 1, 1), job_id


def test_one_runner_completes_jobs_of_queues_on_every_node_once(
    services: Services, queues: list[str]
) -> None:
    ids = [job_id for q in queues for job_id in _submit(services, q, 5)]
    _burst(services, queues)
    _completed_once(services, ids)
    for q in queues:
        assert services.queue.depth(q) == {"wait": 0, "delayed": 0, "active": 0}


def test_wait_for_work_wakes_for_a_job_on_any_node(services: Services, queues: list[str]) -> None:
    queue = services.manager.polling
    names = [*queues, "default"]
    for q in queues:
        woke: list[float] = []
        waiter = threading.Thread(target=_waited, args=(queue, names, woke), daemon=True)
        waiter.start()
        time.sleep(0.3)  # most often the push lands while it blocks; sooner must work too
        _submit(services, q)
        waiter.join(WAIT_S)
        assert woke, f"no wake-up for a job on {q}"
        assert services.manager.claim(q, 1, "w", 30, True).jobs  # the job is there to claim


def _waited(queue: Any, names: list[str], woke: list[float]) -> None:
    started = time.monotonic()
    queue.wait_for_work(names, 180.0)  # far beyond the join's bound
    woke.append(time.monotonic() - started)


def test_wait_for_work_on_several_slots_lasts_its_timeout(
    services: Services, queues: list[str]
) -> None:
    started = time.monotonic()
    services.manager.wait_for_work(queues, 0.5)
    assert time.monotonic() - started >= 0.5


def test_an_idle_runner_serving_every_node_picks_up_new_jobs(
    services: Services, queues: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    runner = services.runner(
        registry, {q: 1 for q in queues}, upkeep=[], listen=False, poll_interval_s=0.2
    )
    with caplog.at_level(logging.WARNING), running(runner):
        for q in queues:
            (job_id,) = _submit(services, q)
            wait_until(lambda i=job_id: _job(services, i).status == "completed", f"job on {q}")
    # A CROSSSLOT refusal is caught by the claim loop: it would show as a warning here.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_priorities_and_delayed_jobs_on_a_cluster(services: Services, queues: list[str]) -> None:
    low = _submit(services, queues[1], 3, priority=1)
    high = _submit(services, queues[1], 3, priority=9)
    (delayed,) = _submit(services, queues[2], delay_ms=400)
    assert _job(services, delayed).status == "delayed"
    _burst(services, queues, concurrency=1)
    _completed_once(services, [*low, *high, delayed])
    starts = {i: _job(services, i).started_at for i in [*low, *high]}
    assert max(starts[i] for i in high) < min(starts[i] for i in low)
    job = _job(services, delayed)
    assert job.started_at >= job.run_at


def test_pause_and_resume_a_queue_on_a_cluster(services: Services, queues: list[str]) -> None:
    paused, other = queues[0], queues[2]
    services.manager.pause(paused, True)
    held, free = _submit(services, paused, 2), _submit(services, other, 2)
    _burst(services, queues)
    assert {_job(services, i).status for i in held} == {"pending"}
    _completed_once(services, free)
    services.manager.pause(paused, False)
    _burst(services, queues)
    _completed_once(services, held)


def test_the_reconciler_finds_what_a_node_lost(services: Services, queues: list[str]) -> None:
    ids = {q: _submit(services, q, 2) for q in queues}
    lost = services.manager.polling
    assert isinstance(lost, RedisQueue)
    lost.redis.delete(lost.keys(queues[1]).wait)  # the node of queue 1 forgot its line
    assert services.manager.reconcile_queues(queues) == 2
    assert services.manager.reconcile_queues(queues) == 0
    _burst(services, queues)
    _completed_once(services, [i for q in queues for i in ids[q]])


def test_rate_limits_on_a_cluster(ports: list[int], url: str, redis_prefix: str) -> None:
    keys = [int(k) for k in one_per_node(ports[0], str, lambda i: f"ratelimit:{i}")]
    buckets = TokenBuckets(url, redis_prefix, cluster=True)
    try:
        for key in keys:
            assert buckets.take(key, rate=1.0, capacity=5, wanted=3).tokens == 3
            assert buckets.take(key, rate=1.0, capacity=5, wanted=3).tokens == 2
            empty = buckets.take(key, rate=1.0, capacity=5, wanted=3)
            assert empty.tokens == 0 and 0 < empty.wait_s <= 1.0
            assert buckets.redis.exists(bucket_key(redis_prefix, key)) == 1
    finally:
        buckets.close()


def test_a_single_node_client_is_refused_by_the_cluster(
    url: str, redis_prefix: str, queues: list[str]
) -> None:
    """What DJS_REDIS_CLUSTER is for: without it, pushes to keys on other nodes get MOVED."""
    single = RedisQueue(url, redis_prefix)
    try:
        with pytest.raises(MovedError):
            single.push([Ready(id=i + 1, queue=q, priority=0) for i, q in enumerate(queues)])
    finally:
        single.close()


def test_a_cluster_that_does_not_answer_is_reported_not_fatal(settings: Settings) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    svc = Services.connect(settings.model_copy(update={"redis_url": down, "redis_cluster": True}))
    try:
        svc.store.pools.durable.wait(timeout=10)
        assert readiness(svc).checks["redis"] == "unavailable"
    finally:
        svc.close()


def test_the_setting_reads_the_environment_and_refuses_a_database_but_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DJS_REDIS_CLUSTER", "1")
    monkeypatch.setenv("REDIS_URL", "rediss://user:hunter2@cfg.example.com:6379")
    assert Settings().redis_cluster is True
    for url in ("redis://user:hunter2@h:6379/3", "redis://user:hunter2@h:6379/0?db=2"):
        monkeypatch.setenv("REDIS_URL", url)
        with pytest.raises(ValidationError) as caught:
            Settings()
        assert "database 0 only" in str(caught.value) and "hunter2" not in str(caught.value)
    monkeypatch.setenv("DJS_REDIS_CLUSTER", "0")
    assert Settings().redis_url.endswith("/0?db=2")  # a single node may use any database
