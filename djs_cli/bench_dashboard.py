"""`djs bench --scenarios dashboard`: the dashboard's reads on a large table.

It fills N jobs (1,000,000 by default, `--dashboard-jobs`) across every state and five
queues (djs_cli/bench_fill.py), then times a bounded number of calls of each read through
the real HTTP front, one after another on one kept-alive connection, as a dashboard makes
them: GET /queues (as a viewer and as the submitter owning half the jobs), a state tab in
each order, a payload-fragment search (a rare and a common fragment), an error-text search,
a payload-text search and GET /stats. Finally it checks that GET /queues's counts equal
count(*) by queue and state.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import quote

from common.store.keys import create_key
from djs_cli.bench_fill import fill
from djs_cli.bench_system import BenchSystem

Figures = dict[str, Any]

DEFAULT_JOBS = 1_000_000
QUICK_JOBS = 20_000

DASHBOARD_TARGETS: dict[str, tuple[str, float]] = {
    "dashboard.queues_ms.p95": ("<=", 20),
    "dashboard.queues_submitter_ms.p95": ("<=", 20),
    "dashboard.tab_newest_ms.p95": ("<=", 100),
    "dashboard.tab_oldest_ms.p95": ("<=", 100),
    "dashboard.tab_priority_ms.p95": ("<=", 100),
    "dashboard.tab_waiting_priority_ms.p95": ("<=", 100),
    "dashboard.payload_rare_ms.p95": ("<=", 100),
    "dashboard.payload_common_ms.p95": ("<=", 100),
    "dashboard.error_ms.p95": ("<=", 100),
    "dashboard.text_ms.p95": ("<=", 100),
    "dashboard.stats_ms.p95": ("<=", 100),
    "dashboard.counts_exact": ("==", 1),
}


def _reads(jobs: int) -> dict[str, str]:
    """Each read the dashboard makes, by name (the fill's data: bench_fill.py)."""
    customer = (jobs // 2) % 50_000  # a customer with about jobs / 50,000 jobs
    failed = next(i for i in range(jobs // 2, jobs) if 70 <= i % 100 < 78 and i % 4 == 0)
    smtp = f"smtp-{failed % 20}.mail"
    return {
        "queues": "/queues",
        "queues_submitter": "/queues",
        "tab_newest": "/jobs?queue=emails&status=completed",
        "tab_oldest": "/jobs?queue=emails&status=completed&sort=oldest",
        "tab_priority": "/jobs?queue=emails&status=completed&sort=priority",
        "tab_waiting_priority": "/jobs?queue=emails&status=pending&sort=priority",
        "payload_rare": "/jobs?payload=" + quote(json.dumps({"customer_id": customer})),
        "payload_common": "/jobs?payload=" + quote(json.dumps({"kind": "refund"})),
        "error": f"/jobs?error={quote(smtp)}",
        "text": f"/jobs?text={quote(f'user{customer}@')}",
        "stats": "/stats",
    }


def _get(conn: http.client.HTTPConnection, path: str, key: str) -> tuple[int, Any]:
    conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def _time(system: BenchSystem, path: str, key: str, calls: int) -> Figures:
    conn = http.client.HTTPConnection(*system.api, timeout=30)
    try:
        _, first = _get(conn, path, key)  # a warm connection, as a refreshing page has
        took, statuses = [], set()
        for _ in range(calls):
            start = time.perf_counter()
            status, _ = _get(conn, path, key)
            took.append((time.perf_counter() - start) * 1000)
            statuses.add(status)
    finally:
        conn.close()
    took.sort()

    def pct(p: float) -> float:
        return round(took[min(len(took) - 1, max(0, round(p / 100 * len(took)) - 1))], 2)

    found = {"jobs_found": len(first["jobs"])} if "jobs" in first else {}
    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "statuses": sorted(statuses), **found}


def _counts_exact(system: BenchSystem, key: str) -> bool:
    conn = http.client.HTTPConnection(*system.api, timeout=30)
    try:
        status, answer = _get(conn, "/queues", key)
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"GET /queues answered {status}: {answer}")
    shown = {(q["name"], s): n for q in answer["queues"] for s, n in q["counts"].items() if n}
    with system.connect() as db:
        rows = db.execute("SELECT queue, status::text, count(*) FROM jobs GROUP BY 1, 2")
        truth = {(q, s): int(n) for q, s, n in rows.fetchall()}
    return shown == truth


def scenario_dashboard(system: BenchSystem, quick: bool, jobs: int | None = None) -> Figures:
    total = jobs or (QUICK_JOBS if quick else DEFAULT_JOBS)
    calls = 20 if quick else 200
    pepper = system.settings.key_pepper.get_secret_value().encode()  # type: ignore[union-attr]
    with system.connect() as conn:
        # Not rate-limited in practice, like the bench's submitter key.
        name = f"bench-viewer-{time.time_ns()}"
        _, viewer = create_key(conn, pepper, name, "viewer", rate_per_s=1e6)
        row = conn.execute("SELECT id FROM api_keys WHERE name = 'bench'").fetchone()
        owner = row[0] if row else None
        start = time.time()
        fill(conn, total, owner)
        fill_s = time.time() - start
    figures: Figures = {"jobs": total, "calls_each": calls, "fill_s": round(fill_s, 1)}
    for name, path in _reads(total).items():
        key = system.api_key if name == "queues_submitter" else viewer
        figures[f"{name}_ms"] = _time(system, path, key, calls)
    figures["counts_exact"] = int(_counts_exact(system, viewer))
    return figures
