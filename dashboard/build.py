"""Render the dashboard into a static site: one HTML shell, plain ES modules, one stylesheet.

The same function builds what `djs dashboard build` writes to a folder (to host anywhere,
e.g. S3) and what the API serves at /admin/queues (rendered once at start-up, kept in
memory). The shell holds no data: every page reads the JSON API with the signed-in key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

HERE = Path(__file__).parent
STATIC = HERE / "static"
SHELL = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


class BadApiUrl(ValueError):
    """An --api-url that is not an absolute http(s) URL."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'


@dataclass(frozen=True)
class Site:
    """The rendered site: the shell, its assets by name, and the policy pages must carry."""

    shell: Asset
    assets: Mapping[str, Asset]
    csp: str
    # A hash of every asset: names a published folder of them (assets/<version>/).
    version: str = ""


def api_origin(api_url: str) -> str:
    """The origin of an --api-url (what connect-src must allow), or BadApiUrl."""
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise BadApiUrl(f"not an absolute http(s) URL without a query: {api_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(api_url: str = "") -> str:
    connect = "'self'" + (f" {api_origin(api_url)}" if api_url else "")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


def build_site(
    roles: Mapping[tuple[str, str], str], api_url: str = "", asset_base: str = "assets/"
) -> Site:
    """Render the shell and read the assets.

    `roles` is the API's table of the least role per route (api_app/auth/roles.py), given to
    the page so it shows only the actions the signed-in key's role may do. `api_url` is
    where the API answers (empty: the page's own origin). `asset_base` prefixes every asset
    URL in the shell (the API serves them under /admin/queues/assets/)."""
    csp = content_security_policy(api_url)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    assets = {p.name: _asset(p) for p in sorted(STATIC.iterdir()) if p.suffix in CONTENT_TYPES}
    version = hashlib.sha256(b"".join(a.body for a in assets.values())).hexdigest()[:12]
    table = {f"{method} {path}": least for (method, path), least in roles.items()}
    html = env.get_template("index.html.j2").render(
        api_url=api_url.rstrip("/"),
        asset_base=asset_base,
        roles=json.dumps(table, sort_keys=True),
        # A static host may send no headers: the page carries the policy too (without
        # frame-ancestors, which a <meta> policy cannot hold).
        meta_csp=csp.replace("; frame-ancestors 'none'", ""),
        version=version,
    )
    return Site(Asset(html.encode(), CONTENT_TYPES[".html"]), assets, csp, version)


def _asset(path: Path) -> Asset:
    return Asset(path.read_bytes(), CONTENT_TYPES[path.suffix])


def write_site(site: Site, out: Path) -> list[Path]:
    """Write the site to `out` (index.html and assets/): what a static host serves."""
    (out / "assets").mkdir(parents=True, exist_ok=True)
    written = [out / SHELL]
    written[0].write_bytes(site.shell.body)
    for name, asset in site.assets.items():
        target = out / "assets" / name
        target.write_bytes(asset.body)
        written.append(target)
    return written
