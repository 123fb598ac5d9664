"""The chaos harness, in one import for the scenarios: real djs processes (runners, API),
private Redis and PostgreSQL servers for the scenarios that restart them, a ledger of
handler executions, the HTTP submitter, and SQL checks.

Every wait is bounded by a deadline; every address is 127.0.0.1. The pieces:

- core.py: sizes (`pick`), bounded waits, free ports, the summary line;
- processes.py: `Cluster` (djs processes with logs in files; `boot` opens a scenario), the ledger;
- servers.py: private Redis and PostgreSQL servers;
- submitter.py: the JSON client and the paced POST /jobs submitters;
- sql.py: the checks read from Postgres; jobs.py: library submissions.
"""

from __future__ import annotations

from tests.chaos.core import (
    FULL,
    REPO,
    SCALE,
    TERMINAL,
    Record,
    free_port,
    pick,
    results_dir,
    summary_line,
    wait_until,
)
from tests.chaos.jobs import sleep_job, submit
from tests.chaos.processes import (
    HANDLERS,
    Cluster,
    Entry,
    Ledger,
    Proc,
    stop_gracefully,
    wait_runner_ready,
)
from tests.chaos.servers import PgServer, RedisServer, redis_binary
from tests.chaos.sql import (
    completed_twice,
    db,
    not_terminal,
    outcome_counts,
    scalar,
    settle,
    settle_accepted,
    status_counts,
)
from tests.chaos.submitter import (
    JsonClient,
    Load,
    Response,
    Submitter,
    status_histogram,
    wait_api_ready,
)

__all__ = [
    "FULL",
    "HANDLERS",
    "REPO",
    "SCALE",
    "TERMINAL",
    "Cluster",
    "Entry",
    "JsonClient",
    "Ledger",
    "Load",
    "PgServer",
    "Proc",
    "Record",
    "RedisServer",
    "Response",
    "Submitter",
    "completed_twice",
    "db",
    "free_port",
    "not_terminal",
    "outcome_counts",
    "pick",
    "redis_binary",
    "results_dir",
    "scalar",
    "settle",
    "settle_accepted",
    "sleep_job",
    "status_counts",
    "status_histogram",
    "stop_gracefully",
    "submit",
    "summary_line",
    "wait_api_ready",
    "wait_runner_ready",
    "wait_until",
]
