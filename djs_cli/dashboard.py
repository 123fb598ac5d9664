"""`djs dashboard build`: render the dashboard into a static site (HTML, ES modules, CSS).

The API serves the same site at /admin/queues; a build is for hosting it elsewhere (S3, any
static host), pointed at the API with --api-url (the API must then allow the site's origin:
DJS_CORS_ORIGINS)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from api_app.auth.roles import MINIMUM_ROLE
from common.settings import Settings
from dashboard.build import BadApiUrl, api_origin, build_site, write_site


def _api_url(text: str) -> str:
    try:
        api_origin(text)
    except BadApiUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def cmd_dashboard_build(settings: Settings, args: argparse.Namespace) -> int:
    site = build_site(MINIMUM_ROLE, api_url=args.api_url or "")
    written = write_site(site, Path(args.out))
    print(f"wrote {len(written)} files to {args.out}/ (open {args.out}/index.html on a web host)")
    if args.api_url:
        print(f"the API at {args.api_url} must allow this site's origin: DJS_CORS_ORIGINS=...")
    return 0


def add_dashboard_commands(sub: Any) -> None:
    dashboard = sub.add_parser("dashboard", help="build the web dashboard as a static site")
    verbs = dashboard.add_subparsers(dest="dashboard_command", required=True)
    build = verbs.add_parser("build", help="render dashboard/ into a folder of static files")
    build.add_argument(
        "--api-url",
        type=_api_url,
        default=None,
        help="where the API answers (default: same origin)",
    )
    build.add_argument("--out", default="dashboard-site", help="the folder to write")
    build.set_defaults(func=cmd_dashboard_build)
