"""A job's page in a real browser: every attempt's traceback, retry, cancel, add a job."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.stack import Stack, Watched


def _accept(watched: Watched) -> None:
    """The confirmation dialog: it says how many jobs the action touches, then OK."""
    dialog = watched.page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-text")).to_contain_text("1 job")
    dialog.locator("#confirm-ok").click()


def test_a_failed_jobs_page_shows_each_attempts_traceback(
    stack: Stack, admin_page: Watched
) -> None:
    backoff = {"type": "fixed", "delay_ms": 0}
    ident = stack.submit(
        type="fail", payload={"message": "disk on fire"}, attempts=2, backoff=backoff
    )
    stack.wait_job(ident, lambda j: j["status"] == "failed")
    page = admin_page.page
    page.goto(f"{stack.url}?view=job&id={ident}")
    attempts = page.locator("article.attempt")
    expect(attempts).to_have_count(2)
    for n in (1, 2):
        attempt = page.locator(f'article.attempt[data-key="attempt-{n}"]')
        expect(attempt.locator(".error-line")).to_contain_text("RuntimeError: disk on fire")
        expect(attempt.locator(".traceback pre")).to_contain_text(
            "Traceback (most recent call last)"
        )
        expect(attempt.locator(".traceback pre")).to_contain_text("disk on fire")
    expect(page.locator('[data-field="fail_reason"] dd')).to_have_text("exhausted")
    expect(page.locator('[data-field="attempt"] dd')).to_have_text("2 of 2")
    admin_page.shot("job-failed-light")
    assert admin_page.errors == []


def test_retry_from_the_page_then_the_job_completes_without_a_reload(
    stack: Stack, admin_page: Watched
) -> None:
    ident = stack.submit(type="echo", payload={"hello": "world"}, delay_ms=3_600_000)
    stack.call("POST", f"/jobs/{ident}/cancel", {})
    page = admin_page.page
    page.goto(f"{stack.url}?view=job&id={ident}")
    expect(page.locator('[data-field="status"] dd')).to_have_text("cancelled")
    page.evaluate("window.__djs_loaded = true")  # gone if the page reloads
    page.locator('button[data-action="retry"]').click()
    _accept(admin_page)
    expect(page.locator('[data-field="status"] dd')).to_have_text("completed")
    expect(page.locator('pre[data-field="result"]')).to_contain_text('"hello": "world"')
    assert page.evaluate("window.__djs_loaded") is True
    assert admin_page.errors == []


def test_cancel_an_active_sleep_job_from_its_page(stack: Stack, admin_page: Watched) -> None:
    ident = stack.submit(type="sleep", payload={"seconds": 120})
    stack.wait_job(ident, lambda j: j["status"] == "active")
    page = admin_page.page
    page.goto(f"{stack.url}?view=job&id={ident}")
    expect(page.locator('[data-field="status"] dd')).to_have_text("active")
    page.locator('button[data-action="cancel"]').click()
    expect(page.locator("#confirm-text")).to_contain_text("It is running")
    _accept(admin_page)
    expect(page.locator('[data-field="status"] dd')).to_have_text("failed")
    expect(page.locator('[data-field="fail_reason"] dd')).to_have_text("cancelled")
    assert stack.job(ident)["fail_reason"] == "cancelled"
    assert admin_page.errors == []


def test_add_a_job_through_the_form_and_a_bad_form_shows_the_details(
    stack: Stack, admin_page: Watched
) -> None:
    page = admin_page.page
    page.goto(f"{stack.url}?view=add&queue=forms")
    form = page.locator("form.add-job")
    form.locator('[name="type"]').fill("echo")
    # Checked here, before anything is sent: not JSON, a priority out of range.
    form.locator('[name="payload"]').fill("{not json")
    form.locator('[name="priority"]').fill("5000")
    form.locator('button[data-action="submit"]').click()
    expect(form.locator('.field-error[data-field="payload"]')).to_contain_text("not valid JSON")
    expect(form.locator('.field-error[data-field="priority"]')).to_contain_text("0 to 1000")
    admin_page.shot("add-job-invalid-light")
    # Valid JSON the API refuses (a NUL character Postgres cannot store): its 422 details.
    form.locator('[name="payload"]').fill('{"name": "a\\u0000b"}')
    form.locator('[name="priority"]').fill("7")
    form.locator('button[data-action="submit"]').click()
    expect(form.locator('.field-error[data-field="payload"]')).to_contain_text("NUL")
    assert stack.call("GET", "/jobs?queue=forms")["jobs"] == []
    form.locator('[name="payload"]').fill('{"name": "ada"}')
    form.locator('button[data-action="submit"]').click()
    expect(page.locator('[data-field="status"] dd')).to_have_text("completed")
    [job] = stack.call("GET", "/jobs?queue=forms")["jobs"]
    assert (job["payload"], job["priority"], job["type"]) == ({"name": "ada"}, 7, "echo")
    # The one refusal the test asked for, as the browser logs it; nothing else.
    assert [e for e in admin_page.errors if "status of 422" not in e] == []
