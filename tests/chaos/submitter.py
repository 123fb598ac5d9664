"""HTTP against `djs api`: a JSON client, and submitters that POST /jobs at a steady pace
and keep every answer with its timing."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.chaos.core import wait_until


class JsonClient:
    """One keep-alive connection to `djs api`; reconnects after a network error."""

    key: str | None = None  # the bearer key every client sends (set by Processes.use)

    def __init__(self, port: int, timeout_s: float = 15) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, body); status 0 when the request failed below HTTP (refused, reset)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
        headers = {"content-type": "application/json"} if body is not None else {}
        if self.key is not None:
            headers["authorization"] = f"Bearer {self.key}"
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


@dataclass(frozen=True)
class Response:
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    job_id: int | None
    sent_at: float  # time.monotonic()
    answered_at: float

    @property
    def latency_s(self) -> float:
        return self.answered_at - self.sent_at


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


class Load:
    """Submitters side by side, read as one: every answer, every accepted id."""

    def __init__(self, submitters: list[Submitter]) -> None:
        self.submitters = submitters

    def start(self) -> Load:
        for s in self.submitters:
            s.start()
        return self

    def finish(self, timeout_s: float) -> None:
        """Wait (each up to timeout_s) for every submitter to send all its bodies."""
        for s in self.submitters:
            s.join(timeout_s)
            s.halt.set()

    def halt(self, timeout_s: float) -> None:
        """Stop sending now; wait (each up to timeout_s) for the requests in flight."""
        for s in self.submitters:
            s.halt.set()
        for s in self.submitters:
            s.join(timeout_s)

    @property
    def responses(self) -> list[Response]:
        return [r for s in self.submitters for r in s.responses]

    def accepted(self) -> list[int]:
        return [i for s in self.submitters for i in s.accepted()]


def status_histogram(responses: list[Response]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(r.status for r in responses).items())}
