"""What the lifecycle tests share: the HTTP calls they make and the runners they start, with
the scripted handler (tests/scripted.py) whose payload chooses each attempt's outcome."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalice.test import Client

from common.runner import Runner
from common.services import Services
from common.upkeep.janitor import Janitor
from tests import scripted
from tests.conftest import post_json


def body(response: Any) -> Any:
    return json.loads(response.body)


def submit(client: Client, **fields: Any) -> dict[str, Any]:
    fields.setdefault("type", "scripted")
    response = post_json(client, "/jobs", fields)
    assert response.status_code in (200, 201), response.body
    return body(response)


def job(client: Client, job_id: int) -> dict[str, Any]:
    return body(client.http.get(f"/jobs/{job_id}"))


def run_burst(services: Services, **kw: Any) -> Runner:
    runner = services.runner(
        scripted.registry,
        upkeep=[],
        listen=False,
        burst=True,
        poll_interval_s=0.05,
        concurrency=kw.pop("concurrency", 4),
        **kw,
    )
    runner.run()
    return runner


@contextmanager
def background_runner(services: Services) -> Iterator[Runner]:
    """A runner in a thread, with the janitor, until the block ends."""
    runner = services.runner(
        scripted.registry,
        listen=False,
        poll_interval_s=0.05,
        concurrency=4,
        upkeep=[Janitor(services.manager, interval_s=0.1)],
    )
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(10)


def wait_for(client: Client, job_id: int, status: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = job(client, job_id)
        if current["status"] == status:
            return current
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} is {current['status']}, not {status}")
