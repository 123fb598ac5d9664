"""Crash injector for R4, run as a process of its own (single-threaded, so it forks safely):

    python -m tests.chaos.crasher MODE COUNT PARALLEL

Forks COUNT children, PARALLEL at a time; each submits one chaos_sleep job and dies:

* after_commit: through JobManager.enqueue (common/manager.py) with the crash point
  `after_commit_before_push` armed, so it exits (70) between the Postgres commit and the
  Redis push. Only the reconciler can dispatch these jobs.
* before_commit: through the transactional enqueue (common.enqueue) inside its own
  transaction, then exits (70) before committing: the job must never exist nor run.

Every child prints the id it was given; the parent prints one JSON line:
{"mode", "exit_codes": {code: n}, "ids": [...], "seconds"}. Settings come from the usual
environment (DATABASE_URL, REDIS_URL, DJS_REDIS_PREFIX).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter


def _after_commit(n: int) -> None:
    from common import faults
    from common.models import JobSubmission
    from common.services import Services
    from common.settings import Settings

    faults.ARMED.add("after_commit_before_push")
    services = Services.connect(Settings())
    job = JobSubmission(type="chaos_sleep", payload={"ms": 20, "tag": "crashed", "n": n})
    services.manager.enqueue([job])  # dies inside


def _before_commit(n: int, out: int) -> None:
    import psycopg

    from common.enqueue import enqueue
    from common.settings import Settings

    conn = psycopg.connect(Settings().database_url)  # a transaction opens with the insert
    job = enqueue(conn, "chaos_sleep", {"ms": 20, "tag": "rolled_back", "n": n})
    os.write(out, f"{job.id}\n".encode())
    os._exit(70)  # the connection dies uncommitted: the server rolls the insert back


def _child(mode: str, n: int, out: int) -> None:
    try:
        if mode == "after_commit":
            _after_commit(n)
        else:
            _before_commit(n, out)
    except BaseException as exc:
        os.write(2, f"child {n}: {exc!r}\n".encode())
        os._exit(99)
    os._exit(0)  # the crash point did not fire


def main(mode: str, count: int, parallel: int) -> dict[str, object]:
    # Import once in the parent: children start warm (fork copies the loaded modules).
    import common.enqueue
    import common.manager
    import common.services  # noqa: F401

    start = time.monotonic()
    read_end, write_end = os.pipe()
    codes: Counter[int] = Counter()
    running: set[int] = set()
    for n in range(count):
        if len(running) >= parallel:
            pid, status = os.wait()
            running.discard(pid)
            codes[os.waitstatus_to_exitcode(status)] += 1
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _child(mode, n, write_end)
        running.add(pid)
    for pid in running:
        _, status = os.waitpid(pid, 0)
        codes[os.waitstatus_to_exitcode(status)] += 1
    os.close(write_end)
    with os.fdopen(read_end) as ids:
        given = [int(line) for line in ids.read().split()]
    seconds = round(time.monotonic() - start, 2)
    return {"mode": mode, "exit_codes": dict(codes), "ids": given, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))), flush=True)
