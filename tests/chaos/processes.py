"""Real djs processes (runners, the API) with their logs in files, and the ledger of handler
executions they write (tests/chaos/handlers.py).

Everything started here is killed by `Cluster.close()` (called from fixture teardown).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.services import Services
from common.settings import Settings
from tests.chaos.core import REPO, wait_until
from tests.chaos.submitter import JsonClient, wait_api_ready
from tests.conftest import REDIS_URL
from tests.keys import PEPPER, make_key

HANDLERS = "tests.chaos.handlers"


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{self.pid}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Cluster:
    """Starts djs processes with one environment; logs go to files (never an unread pipe)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(workdir / "ledger.txt")
        self.env: dict[str, str] = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DJS_CHAOS_LEDGER": str(self.ledger.path),
            "DJS_POLL_INTERVAL_S": "0.2",
            "DJS_JANITOR_INTERVAL_S": "0.2",
        }
        self.env.pop("DJS_FAULTS", None)
        self.procs: list[Proc] = []

    def use(self, database_url: str, redis_url: str, redis_prefix: str, **settings: Any) -> None:
        """Point every process started from now on at these servers; settings are DJS_*."""
        self.env.update(
            {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "DJS_REDIS_PREFIX": redis_prefix}
        )
        self.env["DJS_KEY_PEPPER"] = PEPPER
        # Every JsonClient sends this key: an admin never limited in practice.
        name = f"chaos-{uuid.uuid4().hex[:8]}"
        JsonClient.key = make_key(database_url, "admin", name, rate_per_s=1e6)
        self.configure(**settings)

    def configure(self, **settings: Any) -> None:
        self.env.update({f"DJS_{k.upper()}": str(v) for k, v in settings.items()})

    def boot(
        self,
        database_url: str,
        redis_prefix: str,
        runners: Sequence[str],
        concurrency: int,
        api_port: int | None = None,
        redis_url: str = REDIS_URL,
        **settings: Any,
    ) -> list[Proc]:
        """A scenario's opening: use() these servers and DJS_* settings, start the named
        runners (and the API on api_port), and wait until every one of them is ready."""
        self.use(database_url, redis_url, redis_prefix, **settings)
        if api_port is not None:
            self.api(api_port)
        procs = self.ready_runners(runners, concurrency)
        if api_port is not None:
            wait_api_ready(api_port)
        return procs

    def ready_runners(self, names: Sequence[str], concurrency: int) -> list[Proc]:
        """Start these runners side by side; return once every one is about to claim."""
        procs = [self.runner(name, concurrency=concurrency) for name in names]
        for proc in procs:
            wait_runner_ready(proc)
        return procs

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.logdir / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "djs_cli.main", *args],
                env=env or dict(self.env),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = Proc(name, args, env or dict(self.env), log, popen)
        self.procs.append(proc)
        return proc

    def runner(self, name: str, concurrency: int = 8, **settings: Any) -> Proc:
        env = {**self.env, **{f"DJS_{k.upper()}": str(v) for k, v in settings.items()}}
        args = ["worker", "--queues", "default", "--concurrency", str(concurrency)]
        return self.start(name, [*args, "--import", HANDLERS], env)

    def api(self, port: int) -> Proc:
        return self.start("api", ["api", "--port", str(port)])

    def restart(self, proc: Proc) -> Proc:
        return self.start(proc.name, proc.args, proc.env)

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot die otherwise
                    proc.popen.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)

    def log_count(self, needle: str, name: str | None = None) -> int:
        return sum(p.text().count(needle) for p in self.procs if name in (None, p.name))

    def refused_outcomes(self, name: str | None = None) -> int:
        """Outcomes the runners reported refused by their lease fence (stale completions)."""
        pattern = re.compile(r"(\d+) outcomes refused by their lease fence")
        texts = (p.text() for p in self.procs if name in (None, p.name))
        return sum(int(n) for text in texts for n in pattern.findall(text))

    def settings(self) -> Settings:
        return Settings(
            database_url=self.env["DATABASE_URL"],
            redis_url=self.env["REDIS_URL"],
            redis_prefix=self.env["DJS_REDIS_PREFIX"],
            key_pepper=PEPPER,
        )

    @contextlib.contextmanager
    def services(self) -> Iterator[Services]:
        """Store and Redis queue in this process, on the cluster's servers."""
        svc = Services.connect(self.settings())
        try:
            svc.store.pools.durable.wait(timeout=10)
            yield svc
        finally:
            svc.close()


def wait_runner_ready(proc: Proc, timeout_s: float = 20) -> float:
    """A runner logs 'worker ... handlers:' once it is about to claim."""

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited early:\n{proc.text()[-3000:]}")
        return "handlers:" in proc.text()

    return wait_until(ready, timeout_s, f"runner {proc.name} to start", step=0.05)


def stop_gracefully(proc: Proc, timeout_s: float) -> int | None:
    """SIGTERM and wait; None if it did not exit in time."""
    proc.popen.send_signal(signal.SIGTERM)
    try:
        return proc.popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return None


# --- the execution ledger -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    phase: str
    job_id: int
    attempt: int
    pid: int
    at: float
    tag: str


@dataclass
class Ledger:
    path: Path

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:  # a line cut by a kill mid-write is not an execution
                phase, job, attempt, pid, at, tag = parts
                out.append(Entry(phase, int(job), int(attempt), int(pid), float(at), tag))
        return out

    def executions(self, tag: str | None = None) -> Counter[int]:
        """job id -> how many times its handler started."""
        return Counter(
            e.job_id for e in self.entries() if e.phase == "start" and tag in (None, e.tag)
        )
