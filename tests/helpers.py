"""Real djs processes for end-to-end tests."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from common.runner import Runner, RunResult

WAIT_S = 60.0  # upper bounds only: a busy machine may be slow, never wrong


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Each process's output, in a file: a pipe nobody reads fills at 64 KiB and then blocks the
# process on its next log line (four runners logging every attempt stopped within a second).
_OUTPUT: dict[int, IO[bytes]] = {}


def start_djs(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
    process = subprocess.Popen(
        [sys.executable, "-m", "djs_cli.main", *args],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    _OUTPUT[process.pid] = output
    return process


def output_of(process: subprocess.Popen[bytes]) -> str:
    """What a process started by start_djs has written so far, stdout and stderr."""
    output = _OUTPUT[process.pid]
    output.seek(0)
    return output.read().decode(errors="replace")


def run_djs(
    args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """One djs command to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "djs_cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


class Http:
    """A keep-alive JSON client on one connection."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.key = key  # sent as a bearer key with every request

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"content-type": "application/json"} if body is not None else {}
        if self.key is not None:
            headers["authorization"] = f"Bearer {self.key}"
        payload = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=payload, headers=headers)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def close(self) -> None:
        self.conn.close()


def wait_for_health(port: int, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client = Http(port)
            status, _ = client.request("GET", "/health")
            client.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"djs api on port {port} never became healthy")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 15) -> tuple[int, str]:
    """SIGTERM (SIGKILL after timeout_s): the exit code and everything the process wrote."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate(timeout=timeout_s)
    if process.pid not in _OUTPUT:  # not started by start_djs: its own pipe, if any
        return process.returncode, (out or b"").decode(errors="replace")
    text = output_of(process)
    _OUTPUT.pop(process.pid).close()
    return process.returncode, text


def start_api(env: dict[str, str], timeout_s: float = 60) -> tuple[int, subprocess.Popen[bytes]]:
    """A `djs api` on a free port of 127.0.0.1, healthy: its port and process."""
    port = free_port()
    process = start_djs(["api", "--host", "127.0.0.1", "--port", str(port)], env)
    try:
        wait_for_health(port, timeout_s=timeout_s)
    except TimeoutError:
        raise AssertionError(f"djs api never answered: {stop(process)}") from None
    return port, process


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """check()'s first truthy answer, polled; AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


@contextmanager
def running(runner: Runner, timeout_s: float = WAIT_S) -> Iterator[list[RunResult]]:
    """runner.run() on a thread until the block ends (its result lands in the list); then
    stopped and joined."""
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run()), daemon=True)
    thread.start()
    try:
        yield results
    finally:
        runner.stop()
        thread.join(timeout_s)
        assert not thread.is_alive(), "the runner did not stop"
