"""The registry's beat outlives what happens to it: a `djs worker` killed with SIGKILL (no
clean stop) drops off the listing by the two-interval rule and its row stays until pruned; a
beat Postgres refuses, or a Postgres that is gone for a while, is logged and the loop beats
again afterwards, never restarted by its supervisor."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from common.errors import DependencyDown
from common.services import Services
from tests.conftest import ADMIN_URL
from tests.helpers import WAIT_S, running, wait_until
from tests.workers_helpers import db_now, handlers, live, live_row, rows


def test_a_killed_worker_drops_off_the_listing_and_its_row_stays(
    services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "djs_cli.main", "worker", "--beat-interval-s", "0.2"]
    with (tmp_path / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [*command, "--queues", "doomed"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        listed = wait_until(
            lambda: [r for i, r in live(services).items() if i.endswith(f":{worker.pid}")],
            "the worker's first beat",
        )[0]
        assert (listed["pid"], listed["queues"], listed["beat_interval_s"]) == (
            worker.pid,
            ["doomed"],
            0.2,
        )
    finally:
        worker.kill()
        worker.wait(WAIT_S)
    last_beat = rows(services)[listed["id"]]["last_beat"]
    # Nothing beats for it any more: once the database clock is two intervals past its last
    # beat, it is not listed, and its row is still there (nobody withdrew it).
    wait_until(lambda: db_now(services) > last_beat + timedelta(seconds=0.4), "two intervals")
    assert listed["id"] not in live(services)
    assert rows(services)[listed["id"]]["last_beat"] == last_beat


def test_a_beat_postgres_refuses_is_logged_and_the_loop_beats_on(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    with services.store.connection() as conn:  # a rule of this database the runner cannot know
        conn.execute("ALTER TABLE runners ADD CONSTRAINT refuse_beats CHECK (pid < 0)")
    runner = services.runner(
        handlers(), upkeep=[], listen=False, worker_id="refused", beat_interval_s=0.1
    )
    with caplog.at_level(logging.INFO, logger="djs.runner"), running(runner):
        wait_until(lambda: "refused beat failed (CheckViolation" in caplog.text, "a refusal")
        refused_at = runner.registration.pulse.last
        wait_until(lambda: runner.registration.pulse.last > refused_at, "the next turn")
        assert rows(services) == {}
        with services.store.connection() as conn:
            conn.execute("ALTER TABLE runners DROP CONSTRAINT refuse_beats")
        wait_until(lambda: live_row(services, "refused"), "a beat after the refusals")
        wait_until(lambda: "runner refused beats again" in caplog.text, "its recovery logged")
        beat = runner.health()["loops"]["beat"]
        assert (beat["alive"], beat["restarts"], beat["problem"]) == (True, 0, None)
    assert caplog.text.count("refused beat failed") == 1  # once per failing stretch
    assert rows(services) == {}


@contextmanager
def _database_gone(database_url: str) -> Iterator[None]:
    """No connection to this test's database is possible, and the open ones are cut."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        allow = sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}")
        admin.execute(allow.format(sql.Identifier(str(name)), sql.SQL("false")))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            yield
        finally:
            admin.execute(allow.format(sql.Identifier(str(name)), sql.SQL("true")))


def _answers(services: Services) -> datetime | None:
    try:
        return db_now(services)  # type: ignore[no-any-return]
    except DependencyDown:  # the pool's probe has not seen it back yet
        return None


def test_the_beat_outlives_a_postgres_outage_and_beats_again_after_it(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    runner = services.runner(
        handlers(), upkeep=[], listen=False, worker_id="outlives", beat_interval_s=0.1
    )
    with caplog.at_level(logging.INFO, logger="djs.runner"), running(runner):
        before = wait_until(lambda: live_row(services, "outlives"), "the first beat")
        with _database_gone(services.settings.database_url):
            wait_until(lambda: "outlives beat failed" in caplog.text, "a beat that failed")
        back = wait_until(lambda: _answers(services), "Postgres back")
        after = wait_until(
            lambda: (row := live_row(services, "outlives")) and row["last_beat"] > back and row,
            "a beat after the outage",
        )
        assert after["started_at"] == before["started_at"]
        wait_until(lambda: "runner outlives beats again" in caplog.text, "its recovery logged")
        beat = runner.health()["loops"]["beat"]
        assert (beat["alive"], beat["restarts"], beat["problem"]) == (True, 0, None)
    assert rows(services) == {}
