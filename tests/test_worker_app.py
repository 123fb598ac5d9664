"""The worker's handlers as Chalice Lambda functions, through chalice.test.Client."""

from __future__ import annotations

import csv
import http.server
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from chalice.test import Client

from common.handlers import JobContext, NonRetryableError
from worker_app.app import app, registry
from worker_app.config import HandlerSettings
from worker_app.handlers import examples, guards
from worker_app.handlers.examples import csv_report, sleep, webhook


def event(job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": 1, "type": job_type, "queue": "default", "payload": payload, "attempt": 1}


def test_every_registered_type_is_a_lambda_function() -> None:
    # At least these: tests that import tests/hardening_handlers register theirs beside them.
    assert {"csv_report", "echo", "fail", "now", "sleep", "webhook"} <= set(registry.types())
    with Client(app) as client:
        response = client.lambda_.invoke("echo", event("echo", {"a": [1, 2]}))
    assert response.payload == {"a": [1, 2]}


@pytest.fixture
def handler_settings(tmp_path: Path) -> Iterator[HandlerSettings]:
    """The examples' settings for one test: reports under tmp_path, loopback allowed."""
    chosen = HandlerSettings(reports_dir=tmp_path / "reports", webhook_allow="127.0.0.1")
    examples.configure(chosen)
    yield chosen
    examples.configure(HandlerSettings())


def _ctx(name: str) -> JobContext:
    return JobContext(function_name=name, job_id=1, attempt=1, deadline=time.monotonic() + 60)


def test_csv_report_writes_a_file(handler_settings: HandlerSettings) -> None:
    rows = [{"name": "a", "n": 1}, {"name": "b", "n": 2}]
    with Client(app) as client:
        result = client.lambda_.invoke(
            "csv_report", event("csv_report", {"rows": rows, "path": "r/report.csv"})
        )
    assert result.payload["rows"] == 2 and result.payload["path"] == "r/report.csv"
    with (handler_settings.reports_dir / "r" / "report.csv").open() as f:
        assert list(csv.DictReader(f)) == [{"n": "1", "name": "a"}, {"n": "2", "name": "b"}]


@pytest.mark.parametrize(
    "path",
    ["../escape.csv", "a/../../escape.csv", "/tmp/abs.csv", "x.pth", "", "link/escape.csv"],
)
def test_csv_report_writes_nowhere_but_below_its_directory(
    handler_settings: HandlerSettings, tmp_path: Path, path: str
) -> None:
    base = handler_settings.reports_dir
    base.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (base / "link").symlink_to(outside)  # a symlink inside that points out
    with pytest.raises(NonRetryableError):
        csv_report(event("csv_report", {"rows": [{"a": 1}], "path": path}), _ctx("csv_report"))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [], written


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        status = {"/ok": 200, "/redirect": 302}.get(self.path, 404)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/ok")
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


def test_webhook_posts_json_and_4xx_is_not_retryable(
    hook_port: int, handler_settings: HandlerSettings
) -> None:
    ctx = _ctx("webhook")
    url = f"http://127.0.0.1:{hook_port}"
    result = webhook(event("webhook", {"url": f"{url}/ok", "body": {"k": "v"}}), ctx)
    assert result == {"status": 200, "body": "thanks"} and _Hook.received[-1] == {"k": "v"}
    with pytest.raises(NonRetryableError, match="404"):
        webhook(event("webhook", {"url": f"{url}/missing"}), ctx)


def test_webhook_does_not_follow_a_redirect(hook_port: int, handler_settings: HandlerSettings):
    before = len(_Hook.received)
    result = webhook(event("webhook", {"url": f"http://127.0.0.1:{hook_port}/redirect"}), _ctx("w"))
    assert result["status"] == 302 and result["location"] == f"http://127.0.0.1:{hook_port}/ok"
    assert len(_Hook.received) == before + 1  # the redirect's target was not asked


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "0.0.0.0"])
def test_webhook_refuses_loopback_unless_allowed(hook_port: int, host: str) -> None:
    """Without DJS_WEBHOOK_ALLOW a loopback listener sees no connection at all."""
    examples.configure(HandlerSettings())
    before = len(_Hook.received)
    with pytest.raises(NonRetryableError, match="not public"):
        webhook(event("webhook", {"url": f"http://{host}:{hook_port}/ok"}), _ctx("webhook"))
    assert len(_Hook.received) == before


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "fd00:ec2::254",
    ],
)
def test_internal_addresses_are_not_public(address: str) -> None:
    """The check itself, without connecting anywhere: private, link-local and the cloud
    metadata addresses are refused, and an allow-list entry lets one through."""
    ip = ipaddress.ip_address(address)
    assert not guards.is_public(ip)
    assert not guards.allowed("internal.example", ip, [])
    assert guards.allowed("internal.example", ip, ["internal.example"])
    assert guards.allowed("x", ip, [f"{address}/128" if ip.version == 6 else f"{address}/32"])


def test_public_addresses_are_public() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert guards.is_public(ipaddress.ip_address(address))


def test_sleep_stops_when_cancelled() -> None:
    ctx = _ctx("sleep")
    threading.Timer(0.2, ctx.cancel).start()
    started = time.monotonic()
    with pytest.raises(NonRetryableError, match="cancelled"):
        sleep(event("sleep", {"seconds": 3600}), ctx)
    assert time.monotonic() - started < 30  # returned at the cancel, not in an hour
