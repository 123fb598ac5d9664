"""The production HTTP front (djs_cli/http_front.py serving api_app/wsgi.py) as its clients see
it: real server processes on free ports, and raw sockets for what no HTTP library would send
(broken framing, chunked bodies that hide a second request, clients that stall)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import redis
from psycopg import sql

from tests.conftest import ADMIN_URL, REDIS_URL
from tests.helpers import free_port, stop, wait_for_health
from tests.keys import PEPPER, bearer, make_key
from tests.raw_http import Reply, exchange

REPO = Path(__file__).resolve().parents[1]
LIMIT = 4096  # the body limit of the shared server
TIMEOUT_S = 1.0  # its header (and idle keep-alive) timeout
MIB = 1024 * 1024


@dataclass
class Front:
    port: int
    process: subprocess.Popen[bytes]
    output: str = ""

    def stop(self) -> int:
        rc, self.output = stop(self.process)
        return rc


def start_front(env: dict[str, str], *args: str) -> Front:
    port = free_port()
    command = [sys.executable, "-m", "djs_cli.http_front", "--port", str(port), *args]
    process = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_health(port, timeout_s=30)
    except TimeoutError:
        raise AssertionError(f"no answer ({stop(process)})") from None
    return Front(port, process)


# The admin key of this module's database (made by module_env): every request sends it.
KEYS: dict[str, str] = {}


def request(method: str, path: str, body: bytes = b"", kind: str = "application/json") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: djs\r\n"
    if "admin" in KEYS:
        head += f"Authorization: Bearer {KEYS['admin']}\r\n"
    if body or method == "POST":
        head += f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def job_request(job_type: str) -> bytes:
    return request("POST", "/jobs", json.dumps({"type": job_type}).encode())


def jobs_of_type(port: int, job_type: str) -> list[Any]:
    [reply] = exchange(port, request("GET", f"/jobs?type={job_type}"), wait_s=0.5).replies
    return list(reply.json()["jobs"])


def assert_error(reply: Reply, status: int, code: str | None = None) -> None:
    assert reply.status == status, reply.body
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert code is None or error["code"] == code
    assert_our_headers(reply)


def assert_our_headers(reply: Reply) -> None:  # and a Server that names no software
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["server"] == "djs"


@pytest.fixture(scope="module")
def module_env(template_db: str) -> Iterator[dict[str, str]]:
    """A database and Redis prefix for the servers of this module."""
    name = f"djs_test_front_{uuid.uuid4().hex[:10]}"
    prefix = f"djstestfront{uuid.uuid4().hex[:8]}"
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(template_db)))
    url = psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=name)
    KEYS["admin"] = make_key(url, "admin", "front-admin")
    yield {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "DJS_REDIS_PREFIX": prefix,
        "DJS_KEY_PEPPER": PEPPER,
    }
    KEYS.clear()
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(drop.format(sql.Identifier(name)))
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def front(module_env: dict[str, str]) -> Iterator[Front]:
    """One server with small limits, so the limits are quick to reach."""
    limits = ["--threads", "4", "--max-body-bytes", str(LIMIT), "--header-timeout-s", "1"]
    server = start_front(module_env, *limits)
    yield server
    assert server.stop() == 0, server.output


def test_the_api_and_its_error_table_on_one_pipelined_connection(front: Front) -> None:
    looks_like_a_request = {"type": "echo", "payload": {"s": "GET /x HTTP/1.1\r\n\r\n"}}
    # API Gateway answers an unknown route otherwise when an Authorization header is sent.
    with_auth = request("GET", "/nope").replace(b"Host: djs", b"Host: djs\r\nAuthorization: x")
    sent = [
        (request("GET", "/no/such/route"), 404, "not_found"),
        (with_auth, 404, "not_found"),
        (request("DELETE", "/health"), 405, "method_not_allowed"),
        (request("POST", "/jobs"), 400, "malformed_json"),
        (request("POST", "/jobs", b'{"type": "echo"}', "text/plain"), 415, None),
        (request("GET", "/jobs/abc"), 422, "validation_error"),
        (request("GET", "/jobs/999999"), 404, "not_found"),
    ]
    first = request("POST", "/jobs", json.dumps(looks_like_a_request).encode())
    got = exchange(front.port, first + b"".join(raw for raw, _, _ in sent), wait_s=0.5)
    created, *errors = got.replies
    assert created.status == 201 and created.json()["payload"] == looks_like_a_request["payload"]
    assert created.headers["location"] == f"/jobs/{created.json()['id']}" and len(errors) == 7
    assert_our_headers(created)
    for reply, (_, status, code) in zip(errors, sent, strict=True):
        assert_error(reply, status, code)
    assert errors[2].headers["allow"] == "GET"


MALFORMED = {
    "request line": b"HELLO THERE\r\n\r\n",
    "header without a colon": b"GET /health HTTP/1.1\r\nHost djs\r\n\r\n",
    "folded header": b"GET /health HTTP/1.1\r\nHost: djs\r\nX-A: 1\r\n  2\r\n\r\n",
    "space before the colon": b"POST /jobs HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}",
    "two lengths": b"POST /jobs HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{} ",
    "length not a number": b"POST /jobs HTTP/1.1\r\nContent-Length: 2x\r\n\r\n{}",
    "negative length": b"POST /jobs HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    "unknown transfer coding": b"POST /jobs HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    "headers too large": b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 600_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_framing_is_400_and_the_connection_closed(front: Front, raw: bytes) -> None:
    smuggled = f"smuggled-{uuid.uuid4().hex[:8]}"
    got = exchange(front.port, raw + job_request(smuggled))
    assert [r.status for r in got.replies] == [431 if b"X-Big" in raw else 400]
    assert got.closed and jobs_of_type(front.port, smuggled) == []
    # hyper's own answer (an empty body): no banner either.
    assert "server" not in got.replies[0].headers


def _chunked(chunks: bytes, length: int | None = None) -> bytes:
    head = b"POST /jobs HTTP/1.1\r\nHost: djs\r\nContent-Type: application/json\r\n"
    head += b"" if length is None else b"Content-Length: %d\r\n" % length
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks


def _smuggling(inner: bytes) -> dict[str, bytes]:
    """Requests whose body holds `inner`, a whole request, framed in ways that disagree."""
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner)
    return {
        "chunked": _chunked(chunk),  # a front that ignores chunked reads `inner` next
        "CL.TE": _chunked(b"0\r\n\r\n" + inner, length=5),  # one trusting the length, too
        "TE.CL": _chunked(b"0\r\n\r\n" + inner, length=5 + len(inner)),
        "broken chunk": _chunked(b"2\r\n{}\r\nzz\r\n" + inner),
        "two codings": _chunked(chunk).replace(b"chunked", b"chunked\r\nTransfer-Encoding: x"),
    }


@pytest.mark.parametrize("case", list(_smuggling(b"")))
def test_a_chunked_body_is_refused_and_never_runs_as_a_request(front: Front, case: str) -> None:
    smuggled = f"smuggled-{uuid.uuid4().hex[:8]}"
    got = exchange(front.port, _smuggling(job_request(smuggled))[case])
    assert len(got.replies) == 1 and got.closed, got
    [reply] = got.replies
    assert reply.status in (400, 411)  # 400: the server refused the framing itself
    if reply.status == 411:
        assert_error(reply, 411, "length_required")
        assert reply.headers["connection"] == "close"
    assert jobs_of_type(front.port, smuggled) == []
    # The check can fail: the same inner request, sent as a request, creates its job.
    again = exchange(front.port, job_request(smuggled), wait_s=0.3)
    assert [r.status for r in again.replies] == [201]
    assert len(jobs_of_type(front.port, smuggled)) == 1


def test_a_body_over_the_limit_is_413_before_it_is_sent(front: Front) -> None:
    head = b"POST /jobs HTTP/1.1\r\nHost: djs\r\nContent-Type: application/json\r\n"
    for extra in (b"", b"Expect: 100-continue\r\n"):
        # Only the headers: the answer cannot wait for a body that never comes.
        got = exchange(front.port, head + extra + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1))
        assert got.closed and got.seconds < 3 and len(got.replies) == 1
        assert_error(reply := got.replies[0], 413, "payload_too_large")
        assert reply.json()["error"]["details"] == {"limit_bytes": LIMIT}
        assert reply.headers["connection"] == "close"
    at_the_limit = json.dumps({"type": "echo"}).ljust(LIMIT).encode()
    [reply] = exchange(front.port, request("POST", "/jobs", at_the_limit), wait_s=0.5).replies
    assert reply.status == 201
    # A body that ends before its length (the client half-closed) is not run either.
    cut = exchange(front.port, request("POST", "/jobs", at_the_limit)[:-100], half_close=True)
    assert_error(cut.replies[0], 400, "incomplete_body")
    assert cut.closed


TRICKLE = [bytes([b]) for b in request("GET", "/health") + b"X-Pad: " + b"a" * 40 + b"\r\n"]
STALLS = {  # what the client sends, then the statuses it gets before it is cut off
    "silent after connecting": ([b""], []),
    "half a request line": ([b"GET /hea"], []),
    "headers without their end": ([b"GET /health HTTP/1.1\r\nHost: djs\r\n"], []),
    # ~3.5 s to send it all, a byte every 50 ms: the timeout counts from the first byte.
    "headers a byte at a time": (TRICKLE, []),
    "idle after a response": ([request("GET", "/health")], [200]),  # the keep-alive timeout
}


@pytest.mark.parametrize(("parts", "statuses"), STALLS.values(), ids=STALLS.keys())
def test_a_stalled_or_idle_client_is_cut_off(
    front: Front, parts: list[bytes], statuses: list[int]
) -> None:
    got = exchange(front.port, *parts, pause_s=0.05, wait_s=10)
    assert got.closed and [r.status for r in got.replies] == statuses
    assert TIMEOUT_S * 0.8 < got.seconds < TIMEOUT_S + 3


def test_slow_bodies_hold_a_thread_each_and_a_busy_connection_stays_open(front: Front) -> None:
    """Bodies are not timed out (granian has no body timeout): each slow one holds one of a
    process's --threads until its client finishes or leaves; the others go on serving, and
    a connection that sends a request every half timeout lasts several timeouts."""
    slow = [socket.create_connection(("127.0.0.1", front.port)) for _ in range(3)]  # of 4
    try:
        for sock in slow:
            sock.sendall(request("POST", "/jobs", b'{"type": "echo"}' + b" " * 100)[:-100])
        busy = exchange(front.port, *[request("GET", "/health")] * 6, pause_s=TIMEOUT_S / 2)
        assert [r.status for r in busy.replies] == [200] * 6
    finally:
        for sock in slow:
            sock.close()


def test_current_request_is_each_threads_own(front: Front) -> None:
    """Concurrent requests wait together on the group commit: each must answer from its
    own request, not from the one another thread set meanwhile."""
    mismatches: list[Any] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        for payload in ({"client": n, "i": i} for i in range(15)):
            body = json.dumps({"type": "echo", "payload": payload})
            headers = {"content-type": "application/json", **bearer(KEYS["admin"])}
            conn.request("POST", "/jobs", body=body, headers=headers)
            if (reply := json.loads(conn.getresponse().read())).get("payload") != payload:
                mismatches.append((payload, reply))
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mismatches == []


def test_defaults_one_mib_two_processes_and_a_clean_stop(module_env: dict[str, str]) -> None:
    server = start_front(module_env, "--processes", "2")
    try:
        children = [" ".join(c.cmdline()) for c in psutil.Process(server.process.pid).children()]
        # Besides the granian workers: the alert loop's process (spawned, so its command line
        # names multiprocessing) and the resource tracker spawn starts.
        workers = [c for c in children if "multiprocessing" not in c]
        assert len(workers) == 2, children
        assert sum("spawn_main" in c for c in children) == 1, children
        [read] = exchange(server.port, request("POST", "/jobs", b"x" * MIB), wait_s=1).replies
        assert_error(read, 400, "malformed_json")  # read whole: 1 MiB is within the limit
        head = b"POST /jobs HTTP/1.1\r\nHost: djs\r\nContent-Length: %d\r\n\r\n" % (MIB + 1)
        [refused] = exchange(server.port, head).replies
        assert_error(refused, 413, "payload_too_large")
    finally:
        rc = server.stop()
    assert rc == 0, server.output
    assert '"logger": "djs.access"' not in server.output  # no access log unless asked


PROBE_APP = """
    from chalice.app import AuthResponse, Chalice
    from api_app.errors import chalice_errors_in_our_shape
    from api_app.wsgi import ChaliceWSGI
    app = Chalice(app_name="probe")
    app.register_middleware(chalice_errors_in_our_shape, "http")
    @app.authorizer()
    def token(auth):
        if auth.token == "explode":
            raise RuntimeError("the authorizer broke")
        routes = ["/private"] if auth.token == "good" else []
        return AuthResponse(routes=routes, principal_id="ann")
    @app.route("/health")
    def health():
        return {"status": "ok"}
    @app.route("/private", authorizer=token)
    def private():
        return {"principal": app.current_request.context["authorizer"]["principalId"]}
    @app.route("/boom")
    def boom():
        raise RuntimeError("a bug")
    application = ChaliceWSGI(app)
"""


def test_authorizers_run_and_their_errors_keep_our_shape(
    module_env: dict[str, str], tmp_path: Path
) -> None:
    """A Chalice app with a custom authorizer, through the same adapter and server."""
    (tmp_path / "probe_app.py").write_text(textwrap.dedent(PROBE_APP))
    env = {**module_env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    server = start_front(env, "--application", "probe_app:application", "--access-log")

    def get(path: str, token: str = "") -> Reply:
        auth = f"Authorization: {token}\r\n".encode() if token else b""
        raw = f"GET {path} HTTP/1.1\r\nHost: djs\r\n".encode() + auth + b"\r\n"
        [reply] = exchange(server.port, raw, wait_s=0.5).replies
        return reply

    try:
        allowed = get("/private", "good")
        assert allowed.status == 200 and allowed.json() == {"principal": "ann"}
        assert_error(get("/private"), 401, "unauthorized")
        assert_error(get("/private", "bad"), 403, "forbidden")
        assert_error(get("/private", "explode"), 500, "internal_error")
        assert_error(get("/boom"), 500)
    finally:  # SIGKILL: granian cannot stop its worker, the kernel has it stop (prctl)
        workers = psutil.Process(server.process.pid).children()
        server.process.kill()
        server.stop()
    assert psutil.wait_procs(workers, timeout=10)[1] == []  # none left serving the port
    assert "the authorizer broke" in server.output  # logged, never sent
    assert '"method": "GET", "route": "/private", "status": 200' in server.output  # asked for
