"""Every page, light and dark, wide and at 375 px: no console error, no horizontal scroll;
the screenshots the README names (dashboard-screenshots/) are taken here."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.stack import Stack, horizontal_overflow, open_page


def _seed(stack: Stack) -> int:
    for i in range(4):
        stack.submit(type="echo", queue="emails", payload={"to": f"user{i}@example.com"})
    stack.submit(type="echo", queue="reports", delay_ms=3_600_000)
    failed = stack.submit(
        type="fail",
        queue="emails",
        attempts=2,
        payload={"message": "smtp 451"},
        backoff={"type": "fixed", "delay_ms": 0},
    )
    return int(stack.wait_job(failed, lambda j: j["status"] == "failed")["id"])


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 375])
def test_every_page_without_console_errors_or_horizontal_scroll(
    stack: Stack, browser: Browser, scheme: str, width: int
) -> None:
    failed = _seed(stack)
    watched = open_page(browser, stack.keys["admin"], width=width, scheme=scheme)
    page = watched.page
    size = "phone" if width < 600 else "wide"
    views = {
        "overview": ("", "article.queue-card"),
        "queue": ("?view=queue&queue=emails", "table.jobs tbody tr"),
        "job": (f"?view=job&id={failed}", "article.attempt"),
        "add": ("?view=add", "form.add-job"),
        "audit": ("?view=audit", "main h1"),
    }
    try:
        for name, (query, ready) in views.items():
            page.goto(stack.url + query)
            expect(page.locator(ready).first).to_be_visible()
            assert horizontal_overflow(page) <= 0, (name, width)
            if name in ("overview", "queue", "job"):
                watched.shot(f"{name}-{scheme}-{size}")
        # The switch overrides the system's scheme, and is remembered.
        page.locator("#theme").click()
        flipped = "light" if scheme == "dark" else "dark"
        expect(page.locator("html")).to_have_attribute("data-theme", flipped)
        page.reload()
        expect(page.locator("html")).to_have_attribute("data-theme", flipped)
        assert watched.errors == []
    finally:
        watched.context.close()
