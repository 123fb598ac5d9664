"""`djs dashboard build` and the site the API serves: the same builder, the same files."""

from __future__ import annotations

import html
import json
from pathlib import Path

from chalice.test import Client

from api_app.auth.roles import MINIMUM_ROLE
from api_app.routes.admin_site import ASSET_PREFIX
from dashboard.build import build_site
from tests.helpers import run_djs


def test_the_build_writes_a_static_site_pointed_at_the_api(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    result = run_djs(
        ["dashboard", "build", "--api-url", "https://api.example.com/", "--out", str(out)],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    shell = (out / "index.html").read_text()
    assert 'content="https://api.example.com"' in shell  # the API the page calls
    assert "connect-src 'self' https://api.example.com;" in html.unescape(shell)
    assert 'src="assets/app.js"' in shell and (out / "assets" / "app.js").exists()
    assert "<script>" not in shell and "style=" not in shell  # nothing inline
    refused = run_djs(["dashboard", "build", "--api-url", "javascript:alert(1)"], env, tmp_path)
    assert refused.returncode == 2 and "http(s)" in refused.stderr


def test_the_api_serves_what_the_builder_renders(client: Client) -> None:
    site = build_site(MINIMUM_ROLE, asset_base=ASSET_PREFIX)
    shell = client.http.get("/admin/queues")
    assert shell.status_code == 200
    assert shell.body == site.shell.body
    assert shell.headers["Content-Security-Policy"] == site.csp
    for name, asset in site.assets.items():
        answer = client.http.get(f"/admin/queues/assets/{name}")
        assert (answer.status_code, answer.body) == (200, asset.body), name
        assert answer.headers["Content-Type"] == asset.content_type
    missing = client.http.get("/admin/queues/assets/nope.js")
    assert missing.status_code == 404 and json.loads(missing.body)["error"]["code"] == "not_found"
    assert client.http.get("/admin/queues/assets/Bad%20Name").status_code == 422


def test_the_page_knows_the_least_role_of_every_route() -> None:
    shell = build_site(MINIMUM_ROLE).shell.body.decode()
    assert "POST /jobs/{raw_id}/retry&#34;: &#34;operator" in shell
