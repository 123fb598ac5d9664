"""Fixtures of the browser tests: Chromium (Debian's package), a real API and runner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.browser.stack import ARGS, CHROMIUM, Stack, Watched, open_page, start_stack, stop_stack
from tests.keys import make_key


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    yield launched
    launched.close()


@pytest.fixture
def stack(env: dict[str, str], database_url: str) -> Iterator[Stack]:
    keys = {role: make_key(database_url, role) for role in ("viewer", "operator", "admin")}
    running = start_stack(env, keys)
    yield running
    stop_stack(running)


@pytest.fixture
def admin_page(browser: Browser, stack: Stack) -> Iterator[Watched]:
    watched = open_page(browser, stack.keys["admin"])
    yield watched
    watched.context.close()
