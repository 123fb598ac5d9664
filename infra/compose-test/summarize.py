"""Summarise GET /jobs/{id} answers (one JSON object a line, on stdin) for run.sh.

Prints {"total", "completed", "by_status", "runners", "per_runner"} as one JSON line and
exits 0 once every job is finished (none pending, scheduled or active), else 2.
"""

from __future__ import annotations

import collections
import json
import sys

FINISHED = {"completed", "failed", "cancelled"}


def main() -> int:
    statuses: collections.Counter[str] = collections.Counter()
    per_runner: collections.Counter[str] = collections.Counter()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        statuses[job.get("status", "unreadable")] += 1
        if job.get("status") == "completed":
            # The runner of the attempt that completed (an admin key sees workers).
            done = [a for a in job.get("history", []) if a.get("outcome") == "completed"]
            per_runner[str(done[-1].get("worker") if done else None)] += 1
    summary = {
        "total": sum(statuses.values()),
        "completed": statuses["completed"],
        "by_status": dict(statuses),
        "runners": len(per_runner),
        "per_runner": dict(per_runner),
    }
    print(json.dumps(summary))
    return 0 if set(statuses) <= FINISHED else 2


if __name__ == "__main__":
    sys.exit(main())
