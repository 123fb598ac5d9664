"""The worker's handlers as Chalice Lambda functions, through chalice.test.Client."""

from __future__ import annotations

import csv
import http.server
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from chalice.test import Client

from worker_app.app import app, registry


def event(job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": 1, "type": job_type, "queue": "default", "payload": payload, "attempt": 1}


def test_every_registered_type_is_a_lambda_function() -> None:
    assert registry.types() == ["csv_report", "echo", "fail", "now", "sleep", "webhook"]
    with Client(app) as client:
        response = client.lambda_.invoke("echo", event("echo", {"a": [1, 2]}))
    assert response.payload == {"a": [1, 2]}


def test_csv_report_writes_a_file(tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.csv"
    rows = [{"name": "a", "n": 1}, {"name": "b", "n": 2}]
    with Client(app) as client:
        result = client.lambda_.invoke(
            "csv_report", event("csv_report", {"rows": rows, "path": str(out)})
        )
    assert result.payload["rows"] == 2
    with out.open() as f:
        assert list(csv.DictReader(f)) == [{"n": "1", "name": "a"}, {"n": "2", "name": "b"}]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        status = 200 if self.path == "/ok" else 404
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"thanks")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook_port() -> Any:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_webhook_posts_json_and_4xx_is_not_retryable(hook_port: int) -> None:
    from common.handlers import JobContext, NonRetryableError
    from worker_app.handlers.examples import webhook

    ctx = JobContext(function_name="webhook", job_id=1, attempt=1, deadline=1e12)
    url = f"http://127.0.0.1:{hook_port}"
    result = webhook(event("webhook", {"url": f"{url}/ok", "body": {"k": "v"}}), ctx)
    assert result == {"status": 200, "body": "thanks"} and _Hook.received[-1] == {"k": "v"}
    with pytest.raises(NonRetryableError, match="404"):
        webhook(event("webhook", {"url": f"{url}/missing"}), ctx)
