"""Filters kept where a person left them: the overview's queue filter and sort (in the URL),
an attempt's log-line filter (across live refreshes), the default tab of a queue's page
(local storage)."""

from __future__ import annotations

import psycopg
from playwright.sync_api import Page, expect

from tests.browser.stack import Stack, Watched


def _refreshes(page: Page, path: str, n: int = 2) -> None:
    """Wait for n live refreshes (every second in these tests) of the view's data."""
    for _ in range(n):
        with page.expect_response(lambda r: path in r.url):
            pass


def _order(page: Page, *queues: str) -> None:
    cards = page.locator("article.queue-card")
    expect(cards).to_have_count(len(queues))
    for i, queue in enumerate(queues):
        expect(cards.nth(i)).to_have_attribute("data-key", queue)


def test_the_overview_filters_and_sorts_queues_and_the_url_keeps_both(
    stack: Stack, admin_page: Watched
) -> None:
    failed = [stack.submit(type="fail", queue="mail-a", attempts=1) for _ in range(2)]
    for _ in range(3):
        stack.submit(type="echo", queue="mail-b", delay_ms=3_600_000)
    done = stack.submit(type="echo", queue="reports")
    for ident in [*failed, done]:
        stack.wait_job(ident, lambda j: j["status"] in ("completed", "failed"))
    page = admin_page.page
    page.goto(stack.url)
    _order(page, "mail-a", "mail-b", "reports")
    page.locator('input[name="q"]').fill("MAIL")
    _order(page, "mail-a", "mail-b")
    expect(page.locator('[data-field="queue-count"]')).to_have_text("2 of 3 queues")
    page.locator('select[name="order"]').select_option("waiting")
    _order(page, "mail-b", "mail-a")
    assert "q=MAIL" in page.url and "sort=waiting" in page.url
    _refreshes(page, "/queues")  # live refreshes keep the filter, the order and the text box
    _order(page, "mail-b", "mail-a")
    expect(page.locator('input[name="q"]')).to_have_value("MAIL")
    page.locator('select[name="order"]').select_option("failed")
    _order(page, "mail-a", "mail-b")
    page.reload()
    _order(page, "mail-a", "mail-b")
    expect(page.locator('select[name="order"]')).to_have_value("failed")
    page.go_back()  # a sort is a step of the history
    _order(page, "mail-b", "mail-a")
    page.locator('input[name="q"]').fill("nothing-like-this")
    expect(page.locator("main .empty")).to_contain_text("No queue name holds this text")
    assert admin_page.errors == []


def test_an_attempts_log_lines_filter_and_the_filter_survives_refreshes(
    stack: Stack, admin_page: Watched, database_url: str
) -> None:
    backoff = {"type": "fixed", "delay_ms": 0}
    ident = stack.submit(type="fail", attempts=2, backoff=backoff)
    stack.wait_job(ident, lambda j: j["status"] == "failed")
    lines = ["connect db", "Fetch page 1", "fetch page 2", "write report", "FETCH done"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE job_attempts SET logs = %s WHERE job_id = %s", (lines, ident))
    page = admin_page.page
    page.goto(f"{stack.url}?view=job&id={ident}")
    first = page.locator('article.attempt[data-key="attempt-1"]')
    second = page.locator('article.attempt[data-key="attempt-2"]')
    expect(first.locator(".loglines li")).to_have_count(5)
    first.locator('input[name="log-filter-1"]').fill("fetch")
    expect(first.locator('[data-field="log-count"]')).to_have_text("3 of 5 lines")
    expect(first.locator(".loglines li:visible")).to_have_text(
        ["Fetch page 1", "fetch page 2", "FETCH done"]
    )
    expect(second.locator(".loglines li:visible")).to_have_count(5)  # each attempt its own
    _refreshes(page, f"/jobs/{ident}")
    expect(first.locator('input[name="log-filter-1"]')).to_have_value("fetch")
    expect(first.locator('[data-field="log-count"]')).to_have_text("3 of 5 lines")
    expect(first.locator(".loglines li:visible")).to_have_count(3)
    first.locator('input[name="log-filter-1"]').fill("")
    expect(first.locator(".loglines li:visible")).to_have_count(5)
    expect(first.locator('[data-field="log-count"]')).to_have_text("")
    assert admin_page.errors == []


def test_the_default_tab_opens_a_queue_page_whose_url_names_none(
    stack: Stack, admin_page: Watched
) -> None:
    failed = stack.submit(type="fail", queue="tabs", attempts=1)
    done = stack.submit(type="echo", queue="tabs")
    for ident in (failed, done):
        stack.wait_job(ident, lambda j: j["status"] in ("completed", "failed"))
    page = admin_page.page
    page.goto(stack.url)
    expect(page.locator("#default-tab")).to_have_value("latest")
    page.locator("#default-tab").select_option("failed")
    page.reload()
    expect(page.locator("#default-tab")).to_have_value("failed")  # remembered
    page.locator('article.queue-card[data-key="tabs"] h3 a').click()
    expect(page.locator(".tab.current")).to_have_attribute("data-state", "failed")
    expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    expect(page.locator("table.jobs tbody tr")).to_have_attribute("data-key", str(failed))
    assert "status=failed" in page.url  # the URL says which tab, so it can be linked
    page.locator('.tab[data-state="all"]').click()  # latest is named too: no default over it
    expect(page.locator("table.jobs tbody tr")).to_have_count(2)
    expect(page.locator(".tab.current")).to_have_attribute("data-state", "all")
    page.reload()
    expect(page.locator("table.jobs tbody tr")).to_have_count(2)
    page.goto(f"{stack.url}?view=queue&queue=tabs&status=completed")  # a named tab wins
    expect(page.locator("table.jobs tbody tr")).to_have_attribute("data-key", str(done))
    assert admin_page.errors == []
