"""A real `djs api` and a real `djs worker` on a test's own database, and a Chromium page
signed in to the dashboard they serve."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.helpers import Http, start_api, start_djs, stop

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "dashboard-screenshots"
TIMEOUT_MS = 30_000  # a busy 2-core machine

# Counts what a page must never do: run an alert, write to the console through a script.
HOOKS = """
window.__djs_hooks = {alerts: 0, console: 0};
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = () => { window.__djs_hooks.alerts += 1; };
}
for (const name of ["log", "info", "warn", "error", "debug"]) {
  const original = console[name].bind(console);
  console[name] = (...args) => { window.__djs_hooks.console += 1; original(...args); };
}
localStorage.setItem("djs.refresh", "1");
"""


@dataclass
class Stack:
    port: int
    api: Popen[bytes]
    worker: Popen[bytes] | None
    keys: dict[str, str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/admin/queues"

    def http(self, role: str = "admin") -> Http:
        return Http(self.port, self.keys[role])

    def call(self, method: str, path: str, body: Any = None, role: str = "admin") -> Any:
        client = self.http(role)
        try:
            status, answer = client.request(method, path, body)
        finally:
            client.close()
        assert status < 400, (method, path, status, answer)
        return answer

    def submit(self, **job: Any) -> int:
        return int(self.call("POST", "/jobs", job)["id"])

    def job(self, ident: int) -> Any:
        return self.call("GET", f"/jobs/{ident}")

    def wait_job(self, ident: int, ok: Callable[[Any], bool], timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(ident)
            if ok(job):
                return job
            assert time.monotonic() < deadline, f"job {ident} never got there: {job['status']}"
            time.sleep(0.1)


def start_stack(env: dict[str, str], keys: dict[str, str], worker: bool = True) -> Stack:
    port, api = start_api(env)
    runner = start_djs(["worker", "--concurrency", "4"], env) if worker else None
    return Stack(port, api, runner, keys, env)


def stop_stack(stack: Stack) -> None:
    if stack.worker is not None:
        stop(stack.worker)
    stop(stack.api)


@dataclass
class Watched:
    """A page and what it said: console errors, failed requests."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)

    def hooks(self) -> dict[str, int]:
        return dict(self.page.evaluate("window.__djs_hooks"))

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_page(
    browser: Browser, key: str | None, width: int = 1280, scheme: str = "light"
) -> Watched:
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(HOOKS)
    if key is not None:
        context.add_init_script(f"sessionStorage.setItem('djs.key', {key!r});")
    page = context.new_page()
    watched = Watched(page, context)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))
    return watched


def horizontal_overflow(page: Page) -> int:
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )
