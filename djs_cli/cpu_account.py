"""CPU time per job, by role, over a bench scenario: where the time goes, without a profiler.

Roles: the API processes, the runner processes, the Postgres backends serving the bench
database, and the Redis server. Read from /proc through psutil before and after; a backend
that exits during the scenario takes its time with it, and Postgres's own background
processes (WAL writer, checkpointer) and the kernel's network work are not counted.
"""

from __future__ import annotations

from typing import Any

import psutil

from djs_cli.bench_system import BenchSystem

Snapshot = dict[int, tuple[str, float]]  # pid -> (role, CPU seconds so far)


def snapshot(system: BenchSystem) -> Snapshot:
    roles: dict[int, str] = {}
    api = psutil.Process(system.processes[0].pid)
    for process in [api, *api.children(recursive=True)]:
        roles[process.pid] = "api"
    for pid in system.runner_pids():
        roles[pid] = "runners"
    with system.connect() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    for (pid,) in rows:
        roles[int(pid)] = "postgres"
    roles[int(system.redis().info("server")["process_id"])] = "redis"
    taken: Snapshot = {}
    for pid, role in roles.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        taken[pid] = (role, times.user + times.system)
    return taken


def per_job_us(before: Snapshot, after: Snapshot, jobs: int) -> dict[str, Any]:
    """Microseconds of CPU per job, by role, between two snapshots."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        earlier = before.get(pid, (role, 0.0))[1]
        spent[role] = spent.get(role, 0.0) + max(0.0, seconds - earlier)
    return {role: round(spent[role] / jobs * 1e6, 1) for role in sorted(spent)}
