"""Poison under load, end to end: while 8 clients submit clean jobs to a real `djs api`, 4 send
every kind of hostile request we know of for 10 s. No clean request fails, every bad one is a
4xx (never a 5xx, never a connection dropped without an answer), and exactly the accepted jobs
are stored. Then a fresh runner works for 60 s beside rows no request could have written
(tests/test_unreadable_rows.py), its loops alive and never restarted."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from common.handlers import HandlerRegistry
from common.services import Services
from tests.keys import bearer, make_key
from tests.raw_http import parse
from tests.test_http_front import MIB, Front, start_front
from tests.test_unreadable_rows import insert_poison

BIG = str(2**63)
SUBMIT_S = 10.0
RUN_S = 60.0
MAX_CLEAN_PER_CLIENT = 2000  # bounds on the load, whatever the machine's speed
MAX_POISON_ROUNDS = 100


def _raw(method: str, path: str, body: str | bytes | None = None, extra: str = "") -> bytes:
    data = body.encode() if isinstance(body, str) else body
    head = f"{method} {path} HTTP/1.1\r\nHost: djs\r\nConnection: close\r\n{extra}"
    if data is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + (data or b"")


def _job(**fields: Any) -> bytes:
    return _raw("POST", "/jobs", json.dumps({"type": "echo", **fields}))


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


_HEAD = "POST /jobs HTTP/1.1\r\nHost: djs\r\nContent-Type: application/json\r\n"
POISON: dict[str, tuple[bytes, set[int]]] = {  # name -> (request, the statuses allowed)
    "run_at year 10000": (_job(run_at="9999-12-31T23:59:59-14:00"), {422}),
    "offset +16:00": (_job(run_at="2030-01-01T00:00:00+16:00"), {422}),
    "lone surrogate": (
        _raw("POST", "/jobs", '{"type": "echo", "payload": {"s": "\\ud800"}}'),
        {422},
    ),
    "nested 256 deep": (_job(payload={"x": _nested(255)}), {422}),
    "unparseable nesting": (
        _raw("POST", "/jobs", '{"type": "echo", "payload": ' + "[" * 100_000),
        {400},
    ),
    "retry 2^63": (_raw("POST", f"/jobs/{BIG}/retry"), {422}),
    "promote 2^63": (_raw("POST", f"/jobs/{BIG}/promote"), {422}),
    "cancel 2^63": (_raw("POST", f"/jobs/{BIG}/cancel"), {422}),
    "DELETE 2^63": (_raw("DELETE", f"/jobs/{BIG}"), {422}),
    "cursor 2^63": (_raw("GET", f"/jobs?cursor={BIG}"), {422}),
    "ids 2^63": (_raw("GET", f"/jobs?ids=1,{BIG}"), {422}),
    "5000-digit id": (_raw("GET", "/jobs/" + "9" * 5000), {422}),
    "clean age_s 1e12": (
        _raw("POST", "/queues/default/clean", '{"status": "completed", "age_s": 1000000000000}'),
        {422},
    ),
    "clean keep 1e20": (
        _raw(
            "POST",
            "/queues/default/clean",
            '{"status": "completed", "keep": 100000000000000000000}',
        ),
        {422},
    ),
    "retention age_s 1e20": (
        _raw("PUT", "/queues/default/settings", '{"remove_on_complete": {"age_s": 1e20}}'),
        {422},
    ),
    "a batch with one bad job": (
        _raw(
            "POST",
            "/jobs/batch",
            '{"jobs": [{"type": "echo"}, {"type": "echo", "priority": true}]}',
        ),
        {422},
    ),
    "not JSON": (
        _raw("POST", "/jobs", "type=echo", "X: 1\r\n").replace(b"application/json", b"text/plain"),
        {415},
    ),
    "over the limit": (
        (_HEAD + f"Content-Length: {2 * MIB}\r\n\r\n").encode() + b"[" * 65536,
        {413},
    ),
    "Content-Length: abc": ((_HEAD + "Content-Length: abc\r\n\r\n{}").encode(), {400}),
    "chunked": (
        (_HEAD + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n").encode(),
        {400, 411},
    ),
}
LOUD = _raw("POST", "/jobs", '{"type": "loud"}')  # a clean request: its handler raises 1 MB


# The key every request sends (made by the `api` fixture): an admin, never rate limited.
KEYS: dict[str, str] = {}


def ask(port: int, raw: bytes) -> int | None:
    """Send one request on its own connection; the status of the answer, None if none came."""
    auth = f"Host: djs\r\nAuthorization: Bearer {KEYS['admin']}\r\n".encode()
    raw = raw.replace(b"Host: djs\r\n", auth, 1)
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(raw)
            while not parse(received) and (data := sock.recv(65536)):
                received += data
        except OSError:  # the server may close while the rest of a refused body is sent
            pass
    replies = parse(received)
    return replies[0].status if replies else None


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.accepted = 0  # 201 answers: the rows that must be stored
        self.clean_failures: list[Any] = []
        self.poison: Counter[tuple[str, int | None]] = Counter()

    def add(self, accepted: int = 0, failure: Any = None, poison: Any = None) -> None:
        with self.lock:
            self.accepted += accepted
            if failure is not None:
                self.clean_failures.append(failure)
            if poison is not None:
                self.poison[poison] += 1


def clean_client(port: int, n: int, until: float, tally: Tally) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json", **bearer(KEYS["admin"])}
    for i in range(MAX_CLEAN_PER_CLIENT):
        if time.monotonic() > until:
            break
        try:
            body = json.dumps({"type": "echo", "payload": {"client": n, "i": i}})
            conn.request("POST", "/jobs", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 201
            tally.add(accepted=int(ok), failure=None if ok else (n, i, response.status))
        except (OSError, http.client.HTTPException) as exc:
            tally.add(failure=(n, i, repr(exc)))
            conn.close()
    conn.close()


def poison_client(port: int, until: float, tally: Tally) -> None:
    for _ in range(MAX_POISON_ROUNDS):
        if time.monotonic() > until:
            break
        for name, (raw, _) in POISON.items():
            tally.add(poison=(name, ask(port, raw)))
        status = ask(port, LOUD)
        tally.add(accepted=int(status == 201), failure=None if status == 201 else ("loud", status))


@pytest.fixture
def api(env: dict[str, str]) -> Iterator[Front]:
    KEYS["admin"] = make_key(env["DATABASE_URL"], "admin", "poison", rate_per_s=1e6)
    server = start_front(env)  # as `djs api` runs by default: one process, a 1 MiB limit
    yield server
    assert server.stop() == 0, server.output


def _submit_under_poison(port: int) -> Tally:
    tally = Tally()
    until = time.monotonic() + SUBMIT_S
    clean = [threading.Thread(target=clean_client, args=(port, n, until, tally)) for n in range(8)]
    bad = [threading.Thread(target=poison_client, args=(port, until, tally)) for _ in range(4)]
    threads = clean + bad
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SUBMIT_S + 60)
    assert not any(t.is_alive() for t in threads)
    return tally


def _stored(services: Services, where: str = "true") -> int:
    with services.store.connection() as conn:
        row = conn.execute(f"SELECT count(*) AS n FROM jobs WHERE {where}").fetchone()
    return int(row["n"]) if row else 0


class _App:
    def lambda_function(self, name: str) -> Any:
        return lambda func: func


def _registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    app = _App()
    registry.handler(app, "echo")(lambda event, context: event["payload"])
    registry.handler(app, "probe")(lambda event, context: {"ok": True})

    @registry.handler(app, "loud")
    def loud(event: Any, context: Any) -> None:
        raise RuntimeError("x" * MIB)

    return registry


@pytest.mark.serial
def test_poison_under_load_then_a_runner_outlives_it(api: Front, services: Services) -> None:
    tally = _submit_under_poison(api.port)
    print(f"accepted {tally.accepted}; bad requests answered {dict(tally.poison)}")
    assert tally.clean_failures == []
    answered = {name: {s for (n, s) in tally.poison if n == name} for name in POISON}
    unexpected = {n: got for n, got in answered.items() if not got <= POISON[n][1]}
    assert unexpected == {}, tally.poison
    assert all(answered.values())  # every class was sent, and answered
    assert _stored(services) == tally.accepted
    insert_poison(services)  # and rows no request could have written
    _run_for(services, RUN_S)
    assert _stored(services, "type = 'echo' AND status <> 'completed'") == 0
    assert _stored(services, "type = 'loud' AND status <> 'failed'") == 0
    assert _stored(services, "status = 'delayed'") == 0  # the year-10000 row: quarantined


def _run_for(services: Services, seconds: float) -> None:
    """Run a runner for `seconds`, checking every half second that its loops are alive and
    have never been restarted."""
    runner = services.runner(_registry())
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    until = time.monotonic() + seconds
    try:
        while time.monotonic() < until:
            time.sleep(0.5)
            loops = dict(runner.loops)
            assert loops and all(loop.is_alive() for loop in loops.values()), loops
            assert {name: loop.restarts for name, loop in loops.items() if loop.restarts} == {}
        assert runner.processed > 0
    finally:
        runner.stop()
        thread.join(60)
    assert not thread.is_alive()
