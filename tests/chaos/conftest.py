"""Fixtures of the chaos suite: a process cluster that is always torn down, and a recorder
that writes each scenario's figures to chaos-results/<scenario>.json.

Each scenario is self-contained (its own database cloned from the migrated template, its own
Redis prefix, and its own Redis or PostgreSQL server where it restarts one, on free ports),
so the scenarios can run in parallel under `pytest -n auto` without seeing each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import SCALE, Cluster, Record, results_dir, summary_line


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(tmp_path)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture(scope="session")
def chaos_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DJS_CHAOS_RESULTS if set (`make chaos` sets chaos-results), else pytest's tmp dir."""
    return results_dir(tmp_path_factory.getbasetemp() / "chaos-results")


@pytest.fixture
def record(chaos_results: Path) -> Record:
    def write(name: str, figures: dict[str, Any]) -> None:
        body = {"scenario": name, "scale": SCALE, **figures}
        (chaos_results / f"{name}.json").write_text(json.dumps(body, indent=2, default=str))
        print(summary_line(name, figures), flush=True)

    return write
