"""What the dashboard must never do, in a real browser: run job data as HTML, let a key do
what its role may not, keep a key that is no longer valid, be served without its policy."""

from __future__ import annotations

import http.client

import psycopg
from playwright.sync_api import Browser, expect

from tests.browser.stack import Stack, Watched, open_page

XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '"><svg onload=alert(3)>',
    "'><iframe src=javascript:alert(4)></iframe>",
    "javascript:alert(5)",
    "<a href=javascript:alert(6)>x</a>",
    "<body onload=alert(7)>",
    "<details open ontoggle=alert(8)>",
    "<input autofocus onfocus=alert(9)>",
    "<marquee onstart=alert(10)>",
    "<object data=javascript:alert(11)>",
    "<embed src=javascript:alert(12)>",
    "{{constructor.constructor('alert(13)')()}}",
    "<style>*{display:none}</style><b class=pwned>14</b>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(15)>",
    "</pre><script>console.log(16)</script>",
    "<svg><script>alert&#40;17&#41;</script></svg>",
    "<div id=pwned onmouseover=alert(18)>hover</div>",
    "\u2028<script>alert(19)</script>\u2029",
    "<template><img src=x onerror=alert(20)></template>",
]
INJECTED = (
    "script:not([type=module]), iframe, object, embed, marquee, .pwned, #pwned, body [onload],"
    " [onerror], [onfocus], [ontoggle], [onmouseover], [onstart], img[src=x], a[href^=javascript]"
)


def _seed_hostile_jobs(stack: Stack, database_url: str) -> list[int]:
    ids = []
    for n, text in enumerate(XSS):
        job = {"type": "fail", "attempts": 1, "payload": {"message": text, "note": text}}
        ids.append(stack.submit(**job) if n % 2 else stack.submit(type="echo", payload={"x": text}))
    for ident in ids:
        stack.wait_job(ident, lambda j: j["status"] in ("completed", "failed"))
    # Log lines, queue and type names the API would refuse: written as rows djs did not write.
    with psycopg.connect(database_url, autocommit=True) as conn:
        for ident, text in zip(ids, XSS, strict=True):
            conn.execute(
                "UPDATE job_attempts SET logs = %s WHERE job_id = %s", ([text, text], ident)
            )
        for ident, text in list(zip(ids, XSS, strict=True))[:4]:
            conn.execute("UPDATE jobs SET queue = %s, type = %s WHERE id = %s", (text, text, ident))
    return ids


def test_twenty_xss_strings_in_job_data_never_execute(
    stack: Stack, admin_page: Watched, database_url: str
) -> None:
    ids = _seed_hostile_jobs(stack, database_url)
    page = admin_page.page
    pages = [f"{stack.url}", f"{stack.url}?view=queue&queue=default"]
    pages += [f"{stack.url}?view=job&id={ident}" for ident in ids]
    for url in pages:
        page.goto(url)
        expect(page.locator("main[data-view]")).to_be_attached()
        page.locator("main").hover()
        assert page.locator(INJECTED).count() == 0, url
    page.goto(f"{stack.url}?view=job&id={ids[1]}")
    expect(page.locator('pre[data-field="payload"]')).to_contain_text(XSS[1])
    expect(page.locator("ol.loglines li").first).to_have_text(XSS[1])
    page.goto(stack.url)
    expect(page.locator("article.queue-card h3").first).to_be_visible()
    names = page.locator("article.queue-card h3").all_text_contents()
    assert set(XSS[:4]) <= set(names)
    assert admin_page.hooks() == {"alerts": 0, "console": 0}


def test_a_viewer_sees_no_action_buttons(stack: Stack, browser: Browser) -> None:
    failed = stack.submit(type="fail", attempts=1)
    stack.wait_job(failed, lambda j: j["status"] == "failed")
    watched = open_page(browser, stack.keys["viewer"])
    page = watched.page
    try:
        for url in (stack.url, f"{stack.url}?view=queue&queue=default&status=failed"):
            page.goto(url)
            expect(page.locator("#who")).to_contain_text("viewer")
            expect(page.locator("main h1")).to_be_visible()
            assert page.locator("main button[data-action]").count() == 0, url
        page.locator(f'input[data-id="{failed}"]').check()
        assert page.locator(".bulkbar button").count() == 0
        page.goto(f"{stack.url}?view=job&id={failed}")
        expect(page.locator("article.attempt")).to_have_count(1)
        assert page.locator("main button[data-action]").count() == 0
        assert page.locator("#nav a", has_text="Audit").count() == 0
    finally:
        watched.context.close()


def test_sign_in_with_a_key_and_a_401_sends_back_to_sign_in(stack: Stack, browser: Browser) -> None:
    watched = open_page(browser, None)
    page = watched.page
    try:
        page.goto(stack.url)
        page.locator('form.signin [name="key"]').fill(stack.keys["operator"])
        page.locator('form.signin button[type="submit"]').click()
        expect(page.locator("#who")).to_contain_text("operator")
        assert page.context.cookies() == []  # the key is never a cookie
        assert page.evaluate("sessionStorage.getItem('djs.key')") == stack.keys["operator"]
        page.evaluate("sessionStorage.setItem('djs.key', 'djs_00000000_' + 'A'.repeat(43))")
        expect(page.locator("form.signin .field-error")).to_contain_text("Signed out")
        assert page.evaluate("sessionStorage.getItem('djs.key')") is None
    finally:
        watched.context.close()


def _get(
    stack: Stack, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_the_page_and_its_files_carry_a_strict_policy(stack: Stack) -> None:
    shell = _get(stack, "/admin/queues")
    assert shell.status == 200
    assert shell.getheader("content-type") == "text/html; charset=utf-8"
    policy = {
        d.split()[0]: d.split()[1:]
        for d in shell.getheader("content-security-policy", "").split("; ")
    }
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["object-src"] == ["'none'"] and policy["connect-src"] == ["'self'"]
    assert not any("unsafe" in v for values in policy.values() for v in values)
    assert shell.getheader("x-content-type-options") == "nosniff"
    assert shell.getheader("referrer-policy") == "no-referrer"
    for name, kind in (
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ):
        asset = _get(stack, f"/admin/queues/assets/{name}")
        assert asset.status == 200 and asset.getheader("content-type", "").startswith(kind)
        assert asset.getheader("content-security-policy") == shell.getheader(
            "content-security-policy"
        )
        again = _get(
            stack, f"/admin/queues/assets/{name}", {"If-None-Match": asset.getheader("etag", "")}
        )
        assert again.status == 304
    assert _get(stack, "/admin/queues/assets/nothing.js").status == 404
    assert _get(stack, "/admin/queues/assets/..%2Fbuild.py").status in (404, 422)
