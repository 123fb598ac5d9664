"""Handlers the chaos runners load with `djs worker --import tests.chaos.handlers`.

Every execution is written to a ledger file (DJS_CHAOS_LEDGER), independently of Postgres:
a `start` line when the handler begins and an `end` line when it returns. Counting `start`
lines gives the executions (delivery is at least once); the job tables give what was
recorded (exactly once). Each line is one O_APPEND write, so runners may share the file.
"""

from __future__ import annotations

import os
import time
from typing import Any

from chalice.app import Blueprint

from worker_app.registry import registry

bp = Blueprint(__name__)


def ledger(phase: str, event: dict[str, Any]) -> None:
    """Append `phase job_id attempt pid unix_time tag` to the ledger, if one is configured."""
    path = os.environ.get("DJS_CHAOS_LEDGER")
    if not path:
        return
    tag = str(event["payload"].get("tag", "-"))
    line = f"{phase} {event['job_id']} {event['attempt']} {os.getpid()} {time.time():.6f} {tag}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@registry.handler(bp, "chaos_sleep", timeout_s=600)
def chaos_sleep(event: dict[str, Any], context: Any) -> Any:
    """Work for payload.ms milliseconds: asleep, or spinning on the CPU if payload.cpu.

    payload.first_until (unix time) makes the first attempt last until then instead.
    """
    ledger("start", event)
    payload = event["payload"]
    seconds = float(payload.get("ms", 0)) / 1000
    if payload.get("first_until") and event["attempt"] == 1:
        seconds = max(0.0, float(payload["first_until"]) - time.time())
    if payload.get("cpu"):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # holds the GIL: the heartbeat must still run
            sum(range(1000))
    else:
        time.sleep(seconds)
    ledger("end", event)
    return {"pid": os.getpid(), "attempt": event["attempt"]}


@registry.handler(bp, "poison", timeout_s=600)
def poison(event: dict[str, Any], context: Any) -> Any:
    """Kill the whole runner, as a segfaulting extension or an OOM kill would."""
    ledger("start", event)
    os._exit(1)
