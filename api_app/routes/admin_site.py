"""GET /admin/queues: the dashboard (dashboard/), built once when the app is made.

The shell and its assets carry no data and need no key (roles.PUBLIC): every page reads the
JSON API with the key its user signs in with. They are built by the same function as
`djs dashboard build`, so the served site and a hosted one are the same files."""

from __future__ import annotations

import re
from typing import Any

from chalice.app import Blueprint, Response
from pydantic import RootModel

from api_app.auth.roles import MINIMUM_ROLE
from api_app.contract.meta import documented
from api_app.errors import api_view
from common.errors import InvalidInput, NotFound
from dashboard.build import Asset, Site, build_site

SHELL_PATH = "/admin/queues"
ASSET_PREFIX = "/admin/queues/assets/"
# One path segment of the names dashboard/static/ holds (asset names are never user input
# that reaches a file system: they are looked up in the built site's table).
ASSET_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class TextFile(RootModel[str]):
    """A page or an asset of the dashboard, as text."""


_SHELL = documented(
    "The dashboard's page (no data: it reads the API with the key its user signs in with)",
    {200: TextFile},
    media_types=("text/html",),
    uses_dependencies=False,
)
_ASSET = documented(
    "A script, the stylesheet or an image of the dashboard",
    {200: TextFile},
    media_types=("text/javascript", "text/css", "image/svg+xml"),
    errors={404: "The dashboard has no such file."},
    uses_dependencies=False,
)


def _headers(site: Site, asset: Asset) -> dict[str, str | list[str]]:
    return {
        "Content-Type": asset.content_type,
        "Content-Security-Policy": site.csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        # Revalidated on each load (a 304 while unchanged): a new build shows at once.
        "Cache-Control": "no-cache",
        "ETag": asset.etag,
    }


def _answer(site: Site, asset: Asset, request: Any) -> Response:
    headers = _headers(site, asset)
    if (request.headers or {}).get("if-none-match") == asset.etag:
        return Response(body="", status_code=304, headers=headers)
    return Response(body=asset.body.decode(), status_code=200, headers=headers)


def admin_site_routes(site: Site | None = None) -> Blueprint:
    site = site or build_site(MINIMUM_ROLE, asset_base=ASSET_PREFIX)
    bp = Blueprint(__name__)

    @bp.route(SHELL_PATH, methods=["GET"])
    @_SHELL
    @api_view
    def dashboard_page() -> Any:
        return _answer(site, site.shell, bp.current_request)

    @bp.route(ASSET_PREFIX + "{asset}", methods=["GET"])
    @_ASSET
    @api_view
    def dashboard_asset(asset: str) -> Any:
        if not re.match(ASSET_PATTERN, asset):
            raise InvalidInput("not a dashboard file name", [{"path": "asset", "message": asset}])
        found = site.assets.get(asset)
        if found is None:
            raise NotFound(f"the dashboard has no file {asset!r}", {"asset": asset})
        return _answer(site, found, bp.current_request)

    return bp
