"""The overview in a real browser: counts per state, the chart, runners, screenshots."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.stack import Stack, Watched


def _card(watched: Watched, queue: str):  # type: ignore[no-untyped-def]
    return watched.page.locator(f'article.queue-card[data-key="{queue}"]')


def test_the_overview_shows_the_right_counts_and_the_chart_has_data(
    stack: Stack, admin_page: Watched
) -> None:
    done = [stack.submit(type="echo", queue="mail", payload={"n": i}) for i in range(3)]
    failed = stack.submit(type="fail", queue="mail", attempts=1)
    stack.submit(type="echo", queue="mail", delay_ms=3_600_000)
    for ident in [*done, failed]:
        stack.wait_job(ident, lambda j: j["status"] in ("completed", "failed"))
    page = admin_page.page
    page.goto(stack.url)
    card = _card(admin_page, "mail")
    expect(card.locator('[data-state="completed"] .n')).to_have_text("3")
    expect(card.locator('[data-state="failed"] .n')).to_have_text("1")
    expect(card.locator('[data-state="delayed"] .n')).to_have_text("1")
    expect(card.locator('[data-state="pending"] .n')).to_have_text("0")
    # The chart sums the last hour's minutes: the 4 finished jobs are in it.
    expect(page.locator(".chart-box")).to_have_attribute("data-count", "4")
    assert page.locator(".chart rect.completed").count() == 60
    expect(card.locator('[data-field="runners"]')).to_have_text("runners: 1")
    expect(page.locator("table.runners tbody tr")).to_have_count(1)
    admin_page.shot("overview-light")
    assert admin_page.errors == []
