"""A queue's page in a real browser: search by payload fragment and by error text, pause
and resume, bulk retry with its count."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.stack import Stack, Watched


def _ids(watched: Watched) -> list[str]:
    rows = watched.page.locator("table.jobs tbody tr")
    return [rows.nth(i).get_attribute("data-key") or "" for i in range(rows.count())]


def test_search_by_payload_fragment_and_by_error_text(stack: Stack, admin_page: Watched) -> None:
    ada = stack.submit(type="echo", queue="find", payload={"user": {"name": "ada"}, "n": 1})
    stack.submit(type="echo", queue="find", payload={"user": {"name": "bob"}, "n": 2})
    broke = stack.submit(
        type="fail", queue="find", attempts=1, payload={"message": "quota exceeded"}
    )
    stack.submit(type="fail", queue="find", attempts=1, payload={"message": "network down"})
    stack.wait_job(broke, lambda j: j["status"] == "failed")
    page = admin_page.page
    page.goto(f"{stack.url}?view=queue&queue=find")
    expect(page.locator("table.jobs tbody tr")).to_have_count(4)
    page.locator("details.search-box summary").click()
    page.locator('form.search [name="payload"]').fill('{"user": {"name": "ada"}}')
    page.locator('form.search button[type="submit"]').click()
    expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    assert _ids(admin_page) == [str(ada)]
    assert "payload=" in page.url  # the URL is the state: this search can be linked
    admin_page.shot("queue-search-light")
    page.goto(f"{stack.url}?view=queue&queue=find&error=QUOTA")
    expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    assert _ids(admin_page) == [str(broke)]
    page.go_back()
    expect(page.locator("table.jobs tbody tr")).to_have_count(1)
    assert _ids(admin_page) == [str(ada)]
    assert admin_page.errors == []


def test_pause_a_queue_nothing_is_claimed_resume_it_drains(
    stack: Stack, admin_page: Watched
) -> None:
    page = admin_page.page
    stack.wait_job(stack.submit(type="echo", queue="valve"), lambda j: j["status"] == "completed")
    page.goto(f"{stack.url}?view=queue&queue=valve")
    page.locator('button[data-action="pause"]').click()
    expect(page.locator("#confirm-text")).to_contain_text("Pause valve")
    page.locator("#confirm-ok").click()
    expect(page.locator(".page-head .badge.warn")).to_have_text("paused")
    held = [stack.submit(type="echo", queue="valve", payload={"i": i}) for i in range(3)]
    expect(page.locator('.tab[data-state="pending"] .n')).to_have_text("3")
    # The runner is alive and claiming: a job of another queue, sent after, completes.
    stack.wait_job(stack.submit(type="echo", queue="other"), lambda j: j["status"] == "completed")
    assert {stack.job(i)["status"] for i in held} == {"pending"}
    page.locator('button[data-action="resume"]').click()
    expect(page.locator('.tab[data-state="completed"] .n')).to_have_text("4")
    expect(page.locator('.tab[data-state="pending"] .n')).to_have_text("0")
    assert admin_page.errors == []


def test_bulk_retry_of_selected_rows_says_how_many(stack: Stack, admin_page: Watched) -> None:
    ids = [stack.submit(type="echo", queue="bulk", delay_ms=3_600_000) for _ in range(3)]
    for ident in ids:
        stack.call("POST", f"/jobs/{ident}/cancel", {})
    page = admin_page.page
    page.goto(f"{stack.url}?view=queue&queue=bulk&status=cancelled")
    expect(page.locator("table.jobs tbody tr")).to_have_count(3)
    for ident in ids[:2]:
        page.locator(f'input[data-id="{ident}"]').check()
    for _ in range(2):  # refreshes pass (every second): the selection stays
        with page.expect_response(lambda r: "/jobs?" in r.url):
            pass
    expect(page.locator(f'input[data-id="{ids[0]}"]')).to_be_checked()
    page.locator('button[data-action="retry-selected"]').click()
    expect(page.locator("#confirm-text")).to_contain_text("the 2 selected job(s)")
    page.locator("#confirm-ok").click()
    for ident in ids[:2]:
        stack.wait_job(ident, lambda j: j["status"] == "completed")
    assert stack.job(ids[2])["status"] == "cancelled"
    page.locator('button[data-action="retry-all"]').click()
    expect(page.locator("#confirm-text")).to_contain_text("1 cancelled job(s)")
    page.locator("#confirm-ok").click()
    stack.wait_job(ids[2], lambda j: j["status"] == "completed")
    assert admin_page.errors == []
