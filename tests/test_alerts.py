"""Alert hooks per queue (issue 14): PUT /queues/{name}/alerts, and the alert loop's POSTs to
a real HTTP receiver on 127.0.0.1, rate-limited across loops by Postgres."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from chalice.test import Client

from common.alert_hooks import set_alert
from common.alerts import AlertSettings
from common.handlers import NonRetryableError
from common.models import JobSubmission
from common.runner.registry import Registration
from common.services import Services
from common.settings import Settings
from common.upkeep.alerts import AlertLoop, run_in_thread
from tests.helpers import WAIT_S, running, start_api, stop, wait_until
from tests.workers_helpers import handlers

LOCAL = ["127.0.0.1"]


class Receiver:
    """Records every POST; a path under /hang answers only once `release` is set."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if self.path.startswith("/hang"):
                    receiver.release.wait(WAIT_S)
                receiver.posts.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def kinds(self, queue: str) -> list[str]:
        return [p["body"]["kind"] for p in self.posts if p["body"]["queue"] == queue]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.release.set()
    r.server.shutdown()
    r.server.server_close()


def _put(client: Client, queue: str, **body: Any) -> Any:
    return client.http.put(
        f"/queues/{queue}/alerts",
        headers={"content-type": "application/json"},
        body=json.dumps(body),
    )


def _fail_jobs(services: Services, queue: str, n: int) -> list[int]:
    """`n` jobs on `queue` that fail for good, run to the end by a burst runner."""

    def boom(event: dict[str, Any], context: Any) -> Any:
        raise NonRetryableError(f"boom {event['job_id']}")

    jobs = [JobSubmission(type="boom", queue=queue, attempts=1) for _ in range(n)]
    ids = [r.job.id for r in services.manager.enqueue(jobs)]
    runner = services.runner(handlers(boom=boom), {queue: 1}, upkeep=[], listen=False, burst=True)
    runner.run()
    assert runner.processed == n
    return ids


def _waiting(services: Services, queue: str) -> int:
    return services.manager.enqueue([JobSubmission(type="nobody", queue=queue)])[0].job.id


def _open_window(services: Services, queue: str, kind: str) -> None:
    """As if the last send was an hour ago: the window has passed."""
    with services.store.connection() as conn:
        conn.execute(
            "UPDATE queue_alert_sends SET last_sent_at = now() - interval '1 hour'"
            " WHERE queue = %s AND kind = %s",
            (queue, kind),
        )


def _serve(services: Services, queue: str) -> None:
    """A live runner of `queue` in the registry."""
    assert Registration(services.store, f"r-{queue}", [queue], 1, lambda: 0, 30.0).beat()


def test_a_failure_is_told_once_per_window_then_the_rest_with_their_count(
    client: Client, services: Services, receiver: Receiver
) -> None:
    assert _put(client, "fq", url=receiver.url("/hook"), min_interval_s=3600).status_code == 200
    loop = AlertLoop(services.store, LOCAL)
    [first] = _fail_jobs(services, "fq", 1)
    assert loop.run_once() == 1
    [post] = receiver.posts
    assert post["path"] == "/hook"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["User-Agent"] == "djs-alerts"
    body = post["body"]
    assert (body["queue"], body["kind"]) == ("fq", "failed") and body["at"]
    assert body["details"]["count"] == 1
    assert body["details"]["jobs"][0]["id"] == first
    assert body["details"]["jobs"][0]["reason"] == "non_retryable"
    assert f"boom {first}" in body["details"]["jobs"][0]["last_error"]

    later = _fail_jobs(services, "fq", 5)
    assert loop.run_once() == 0  # inside the window
    assert len(receiver.posts) == 1
    _open_window(services, "fq", "failed")
    assert loop.run_once() == 1
    details = receiver.posts[1]["body"]["details"]
    assert details["count"] == 5
    assert sorted(j["id"] for j in details["jobs"]) == later  # not the first again
    _open_window(services, "fq", "failed")
    assert loop.run_once() == 0  # nothing new failed
    assert len(receiver.posts) == 2


def test_two_loops_send_one_post_per_window(
    client: Client, services: Services, receiver: Receiver
) -> None:
    assert _put(client, "two", url=receiver.url("/two"), min_interval_s=3600).status_code == 200
    _fail_jobs(services, "two", 2)
    _waiting(services, "two")  # and no runner: no_runners too
    loops = [AlertLoop(services.store, LOCAL) for _ in range(2)]
    start = threading.Barrier(2)
    sent: list[int] = []

    def turns(loop: AlertLoop) -> None:
        start.wait()
        sent.extend(loop.run_once() for _ in range(5))

    threads = [threading.Thread(target=turns, args=(loop,)) for loop in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert sum(sent) == 2
    assert sorted(receiver.kinds("two")) == ["failed", "no_runners"]
    assert (
        next(p for p in receiver.posts if p["body"]["kind"] == "failed")["body"]["details"]["count"]
        == 2
    )


def test_waiting_jobs_and_no_runner_are_told_and_a_live_runner_silences_it(
    client: Client, services: Services, receiver: Receiver
) -> None:
    assert _put(client, "lonely", url=receiver.url("/n"), min_interval_s=1).status_code == 200
    loop = AlertLoop(services.store, LOCAL)
    assert loop.run_once() == 0  # no jobs: nothing to tell
    _waiting(services, "lonely")
    assert loop.run_once() == 1
    assert receiver.kinds("lonely") == ["no_runners"]
    assert receiver.posts[0]["body"]["details"]["waiting"] == 1
    _open_window(services, "lonely", "no_runners")
    _serve(services, "lonely")
    assert loop.run_once() == 0
    assert receiver.kinds("lonely") == ["no_runners"]


def test_a_schedule_lag_past_the_threshold_is_told(
    client: Client, services: Services, receiver: Receiver
) -> None:
    response = _put(client, "laggy", url=receiver.url("/l"), lag_threshold_s=600, min_interval_s=1)
    assert response.status_code == 200
    _serve(services, "laggy")
    job = _waiting(services, "laggy")
    loop = AlertLoop(services.store, LOCAL)
    assert loop.run_once() == 0  # a fresh job: under the threshold
    with services.store.connection() as conn:
        conn.execute("UPDATE jobs SET created_at = now() - interval '1 hour' WHERE id = %s", (job,))
    assert loop.run_once() == 1
    [post] = receiver.posts
    assert post["body"]["kind"] == "schedule_lag"
    assert post["body"]["details"]["oldest_waiting_s"] > 3000
    assert post["body"]["details"]["threshold_s"] == 600


def test_without_the_allow_list_a_loopback_url_is_refused_and_logged(
    client: Client,
    services: Services,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _put(client, "closed", url=receiver.url("/x"), min_interval_s=1).status_code == 200
    _waiting(services, "closed")
    with caplog.at_level(logging.WARNING, logger="djs.alerts"):
        assert AlertLoop(services.store, []).run_once() == 0
    assert receiver.posts == []
    assert "DJS_ALERT_ALLOW" in caplog.text and "not public" in caplog.text


def test_a_receiver_that_hangs_does_not_stop_the_loop(
    client: Client, services: Services, receiver: Receiver
) -> None:
    assert _put(client, "a-hangs", url=receiver.url("/hang"), min_interval_s=1).status_code == 200
    assert _put(client, "b-fine", url=receiver.url("/fine"), min_interval_s=1).status_code == 200
    _waiting(services, "a-hangs")
    _waiting(services, "b-fine")
    stop = threading.Event()
    thread = run_in_thread(AlertLoop(services.store, LOCAL, interval_s=0.1), stop)
    try:
        # a-hangs comes first and times out (5 s); b-fine's alert still arrives.
        wait_until(lambda: receiver.kinds("b-fine"), "b-fine's alert")
        assert thread.is_alive()
    finally:
        receiver.release.set()
        stop.set()
        thread.join(WAIT_S)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x"},
        {"url": "http:///no-host"},
        {"url": "https://user:pw@example.com/"},
        {"url": "https://example.com:99999/"},
        {"url": "https://example.com/" + "x" * 3000},
        {"url": "https://example.com/", "min_interval_s": 0.5},
        {"url": "https://example.com/", "min_interval_s": 1e9},
        {"url": "https://example.com/", "lag_threshold_s": 0},
        {"url": "https://example.com/", "lag_threshold_s": "soon"},
        {"url": "https://example.com/", "extra": 1},
        {"min_interval_s": 5},
        [],
    ],
)
def test_bad_alert_settings_are_422(client: Client, body: Any) -> None:
    response = client.http.put(
        "/queues/q/alerts", headers={"content-type": "application/json"}, body=json.dumps(body)
    )
    assert response.status_code == 422, response.body
    assert "error" in response.json_body


def test_alert_settings_are_read_removed_and_audited(client: Client) -> None:
    assert client.http.get("/queues/q/alerts").json_body == {"queue": "q", "alert": None}
    assert client.http.get("/queues/bad%20name/alerts").status_code == 422
    response = _put(client, "q", url="https://alerts.example/h", lag_threshold_s=30)
    want = {"url": "https://alerts.example/h", "lag_threshold_s": 30.0, "min_interval_s": 60.0}
    assert response.json_body == {"queue": "q", "alert": want}
    assert client.http.get("/queues/q/alerts").json_body["alert"] == want
    assert client.http.delete("/queues/q/alerts").json_body == {"queue": "q", "removed": True}
    assert client.http.delete("/queues/q/alerts").json_body == {"queue": "q", "removed": False}
    verbs = [e["verb"] for e in client.http.get("/audit").json_body["entries"]]
    assert verbs[:2] == ["queue_alerts_remove", "queue_alerts"]


def test_the_allow_list_setting_is_a_comma_separated_list() -> None:
    settings = Settings(alert_allow=" 127.0.0.1, 10.0.0.0/8 ,,")
    assert settings.alert_allowed() == ["127.0.0.1", "10.0.0.0/8"]
    assert Settings().alert_allowed() == []


def test_djs_api_tells_of_jobs_with_no_runner_when_no_runner_is_up(
    services: Services, env: dict[str, str], receiver: Receiver
) -> None:
    set_alert(services.store, "noone", AlertSettings(url=receiver.url("/api"), min_interval_s=1))
    _waiting(services, "noone")
    alert_env = {**env, "DJS_ALERT_ALLOW": "127.0.0.1", "DJS_ALERT_INTERVAL_S": "0.2"}
    _, process = start_api(alert_env)
    try:
        wait_until(lambda: receiver.kinds("noone"), "djs api's no_runners alert")
    finally:
        code, out = stop(process)
    assert receiver.kinds("noone")[0] == "no_runners"
    assert code == 0, out


def test_a_runner_sends_alerts_from_its_upkeep(services: Services, receiver: Receiver) -> None:
    set_alert(services.store, "ran", AlertSettings(url=receiver.url("/run"), min_interval_s=1))
    widened = Services(
        services.settings.model_copy(update={"alert_allow": "127.0.0.1"}), services.manager
    )

    def boom(event: dict[str, Any], context: Any) -> Any:
        raise NonRetryableError("boom")

    runner = widened.runner(handlers(boom=boom), {"ran": 1}, listen=False)
    with running(runner):
        job = services.manager.enqueue([JobSubmission(type="boom", queue="ran", attempts=1)])
        wait_until(lambda: "failed" in receiver.kinds("ran"), "the runner's failed alert")
    post = next(p for p in receiver.posts if p["body"]["kind"] == "failed")
    assert post["body"]["details"]["jobs"][0]["id"] == job[0].job.id


def test_a_failure_that_commits_after_a_later_one_is_told_too(
    client: Client, services: Services, settings: Settings, receiver: Receiver
) -> None:
    """A failure's finished_at is when its transaction began; it may commit after a failure
    that began later. The watermark waits for it instead of passing it by."""
    assert _put(client, "late", url=receiver.url("/hook"), min_interval_s=3600).status_code == 200
    loop = AlertLoop(services.store, LOCAL)
    with psycopg.connect(settings.database_url) as slow:  # a transaction left open
        row = slow.execute(
            "INSERT INTO jobs (queue, type, payload, status, finished_at, fail_reason, last_error)"
            " VALUES ('late', 'boom', '{}', 'failed', now(), 'non_retryable', 'late')"
            " RETURNING id"
        ).fetchone()
        assert row is not None
        early = row[0]
        later = _fail_jobs(services, "late", 1)
        assert loop.run_once() == 0  # the open transaction may still add an earlier failure
        assert receiver.kinds("late") == []
    assert loop.run_once() == 1  # committed: both are told, in one POST
    details = receiver.posts[0]["body"]["details"]
    assert details["count"] == 2
    assert sorted(j["id"] for j in details["jobs"]) == sorted([early, *later])
