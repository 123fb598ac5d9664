"""The system `djs bench` measures: a fresh database and Redis prefix, the API and runners as
real processes, started and stopped by the benchmark itself."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from psycopg import sql
from pydantic import SecretStr

from common.settings import Settings
from common.store.keys import create_key
from common.store.migrate import migrate


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BenchSystem:
    settings: Settings  # points at the bench database and prefix
    port: int
    runners: int
    concurrency: int
    api_processes: int = 1
    # A submitter key of the bench database, not rate-limited in practice (its override).
    api_key: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    owns_database: bool = True

    @property
    def api(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @classmethod
    def start(
        cls, base: Settings, runners: int, concurrency: int, api_processes: int = 1
    ) -> BenchSystem:
        stamp = time.strftime("%Y%m%d%H%M%S")
        dbname = f"djs_bench_{stamp}"
        admin = psycopg.conninfo.make_conninfo(base.database_url, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        url = psycopg.conninfo.make_conninfo(base.database_url, dbname=dbname)
        pepper = secrets.token_hex(32)  # this run's own
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            _, key = create_key(conn, pepper.encode(), "bench", "submitter", rate_per_s=1e6)
        update = {
            "database_url": url,
            "redis_prefix": f"bench{stamp}",
            "key_pepper": SecretStr(pepper),
        }
        settings = base.model_copy(update=update)
        system = cls(settings, _free_port(), runners, concurrency, api_processes, key)
        system._spawn(["api", "--port", str(system.port), "--processes", str(api_processes)])
        for _ in range(runners):
            system._spawn(["worker", "--concurrency", str(concurrency)])
        system._wait_healthy()
        return system

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.settings.database_url,
            "REDIS_URL": self.settings.redis_url,
            "DJS_REDIS_PREFIX": self.settings.redis_prefix,
            "DJS_DB_POOL_MAX": str(max(10, self.concurrency)),
            "DJS_KEY_PEPPER": pepper.get_secret_value()
            if (pepper := self.settings.key_pepper)
            else "",
        }

    def _spawn(self, args: list[str]) -> None:
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "djs_cli.main", *args],
                env=self._env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def _wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the bench API never became healthy")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.settings.database_url, autocommit=True)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def reset(self) -> None:
        """Empty the jobs between scenarios (runners are idle then), and checkpoint, so one
        scenario's dirty pages are not flushed during the next one's measurement."""
        with self.connect() as conn:
            conn.execute("TRUNCATE jobs, job_attempts, job_events, queues, job_outcomes")
        self.checkpoint()

    def checkpoint(self) -> None:
        """Flush Postgres's dirty pages now, not during the next measurement."""
        # Needs superuser or pg_checkpoint; without them the bench measures without it.
        with self.connect() as conn, contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")

    def runner_pids(self) -> list[int]:
        return [p.pid for p in self.processes[1:]]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        client = self.redis()
        keys = list(client.scan_iter(match=f"{self.settings.redis_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        if self.owns_database:
            dbname = psycopg.conninfo.conninfo_to_dict(self.settings.database_url)["dbname"]
            admin = psycopg.conninfo.make_conninfo(self.settings.database_url, dbname="postgres")
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(str(dbname))
                    )
                )
