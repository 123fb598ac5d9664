"""Connections to Postgres: two pools, and the health of the server behind them.

While the server is known to be down, a caller fails at once with DependencyDown instead of
waiting out the pool's checkout timeout: the API answers 503 in milliseconds, and requests do
not queue behind each other for seconds during an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from common.errors import DependencyDown
from common.store.loaders import total_adapters

log = logging.getLogger("djs.store")

Row = dict[str, Any]
Pool = ConnectionPool[psycopg.Connection[Row]]

# How long a caller waits for a pooled connection before the API answers 503.
_CHECKOUT_TIMEOUT_S = 3.0
# psycopg_pool retries a lost server with a doubling delay and no cap (1, 2, 4 ... 32 s), so
# after a 40 s outage the first connection came 17 s after Postgres was back. Giving up a
# retry series after 5 s means the next request that needs a connection starts a fresh one.
_RECONNECT_TIMEOUT_S = 5.0
# A caller waiting for a connection looks whether the server is known down this often.
_CHECKOUT_SLICE_S = 0.1
# While the server is down, how often a probe tries to connect.
_PROBE_INTERVAL_S = 0.25


# Every value the tables can hold loads, even one from before the bounds (loaders.py).
_ADAPTERS = total_adapters()


def _pool(url: str, name: str, min_size: int, max_size: int, **kwargs: Any) -> Pool:
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        connection_class=psycopg.Connection[Row],
        kwargs={"autocommit": True, "row_factory": dict_row, "context": _ADAPTERS, **kwargs},
        timeout=_CHECKOUT_TIMEOUT_S,
        reconnect_timeout=_RECONNECT_TIMEOUT_S,
        open=False,
        name=name,
    )


def lost_connection(exc: BaseException) -> bool:
    """True when an error says the server is unreachable, not that one query failed."""
    if isinstance(exc, PoolTimeout):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    # No SQLSTATE: libpq lost the socket. 08: connection exceptions. 57P01-57P03: the
    # server is shutting down, crashed or cannot accept connections yet.
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")


class Pools:
    """A durable pool, a relaxed one (commits without waiting for the WAL flush), and the
    server's health: after a lost connection a probe decides whether it is really down."""

    def __init__(self, database_url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.url = database_url
        self.durable = _pool(database_url, "djs", min_size, max_size)
        # Claims and lease renewals need not wait for their WAL flush: if the server crashes
        # before it, the claim is simply undone (the job is pending again and the runner's
        # fenced outcome is refused): the at-least-once contract already covers that.
        self.relaxed = _pool(database_url, "djs-relaxed", 1, 4, options="-c synchronous_commit=off")
        self._lock = threading.Lock()
        self._probing = False
        self._down = False  # a probe failed: fail fast until one succeeds
        self._closed = threading.Event()

    def open(self) -> None:
        self.durable.open(wait=False)
        self.relaxed.open(wait=False)

    def close(self) -> None:
        self._closed.set()
        self.durable.close()
        self.relaxed.close()

    @property
    def down(self) -> bool:
        return self._down

    @contextmanager
    def connection(self, durable: bool = True) -> Iterator[psycopg.Connection[Row]]:
        """A pooled connection; a server that does not answer becomes DependencyDown."""
        pool = self.durable if durable else self.relaxed
        conn = self._checkout(pool)
        try:
            with conn:  # as pool.connection() does: commit, or roll back on an error
                yield conn
        except psycopg.OperationalError as exc:
            if lost_connection(exc):
                self._probe_soon()
            raise DependencyDown("postgres", exc) from exc
        finally:
            pool.putconn(conn)

    def _checkout(self, pool: Pool) -> psycopg.Connection[Row]:
        """Wait for a connection in short slices, so that a caller already waiting when the
        probe finds the server down is answered at once too, not after the full timeout."""
        deadline = time.monotonic() + _CHECKOUT_TIMEOUT_S
        while True:
            if self._down:
                raise DependencyDown("postgres")
            left = deadline - time.monotonic()
            try:
                return pool.getconn(timeout=max(min(left, _CHECKOUT_SLICE_S), 0.001))
            except PoolTimeout as exc:
                if time.monotonic() < deadline:
                    continue
                self._probe_soon()
                raise DependencyDown("postgres", exc) from exc

    def _probe_soon(self) -> None:
        with self._lock:
            if self._probing:
                return
            self._probing = True
        threading.Thread(target=self._probe, name="djs-pg-probe", daemon=True).start()

    def _probe(self) -> None:
        """Connect until the server answers; meanwhile callers fail fast. Then replace the
        pools' dead idle connections before letting callers through again."""
        while not self._closed.is_set():
            if self._server_answers():
                for pool in (self.durable, self.relaxed):
                    try:
                        pool.check()
                    except Exception as exc:  # it went down again: the next failure probes
                        log.debug("pool check failed: %s", exc)
                break
            if not self._down:
                log.warning("postgres is down; failing fast until it answers")
            self._down = True
            self._closed.wait(_PROBE_INTERVAL_S)
        with self._lock:
            self._down = False
            self._probing = False

    def _server_answers(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
