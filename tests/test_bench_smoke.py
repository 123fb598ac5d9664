"""`djs bench --quick` keeps working: every scenario runs and reports its figures.

A smoke test, not a judge: the sizes are tiny and no speed target is asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_URL, REDIS_URL

pytestmark = pytest.mark.serial


def test_bench_quick_runs_every_scenario(tmp_path: Path) -> None:
    env = {"DATABASE_URL": ADMIN_URL, "REDIS_URL": REDIS_URL, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "djs_cli.main",
            "bench",
            "--quick",
            "--out",
            str(tmp_path),
            "--runners",
            "1",
            "--concurrency",
            "64",
            "--api-processes",
            "1",
            "--dashboard-jobs",
            "5000",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [report] = tmp_path.glob("bench-*.json")
    results = json.loads(report.read_text())
    assert set(results) == {"meta", "http", "batch", "latency", "delayed", "backlog", "dashboard"}
    assert results["http"]["errors"] == 0 and results["http"]["end_to_end_jobs_per_s"] > 0
    assert results["batch"]["jobs"] == 2000 and results["batch"]["errors"] == 0
    assert results["latency"]["pickup_ms_p99"] > 0
    assert results["delayed"]["spread_earliest_ms"] >= 0  # never early, even in a smoke run
    assert results["delayed"]["burst_earliest_ms"] >= 0
    assert results["backlog"]["redis_bytes_per_pending_job"] > 0
    dashboard = results["dashboard"]
    assert dashboard["jobs"] == 5000 and dashboard["counts_exact"] == 1
    for name in ("queues", "tab_priority", "payload_rare", "error", "text", "stats"):
        assert dashboard[f"{name}_ms"]["statuses"] == [200] and dashboard[f"{name}_ms"]["p95"] > 0
    assert list(tmp_path.glob("bench-*.png"))
    assert "MISSED" in done.stdout or "met" in done.stdout  # the table was printed
