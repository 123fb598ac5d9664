"""`djs dashboard build|publish`: the dashboard as a static site (HTML, ES modules, CSS).

The API serves the same site at /admin/queues; a build is for hosting it elsewhere (any
static host), `publish` puts it on an S3 website bucket (dashboard/publish.py). Both point
it at the API with --api-url, and the API must then allow the site's origin
(DJS_CORS_ORIGINS)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from api_app.auth.roles import MINIMUM_ROLE
from common import aws
from common.settings import Settings
from dashboard.build import BadApiUrl, api_origin, build_site, write_site
from dashboard.publish import (
    BadBucketName,
    PublishFailed,
    check_bucket_name,
    publish,
    versioned_site,
)
from djs_cli.errors import CliError


def _api_url(text: str) -> str:
    try:
        api_origin(text)
    except BadApiUrl as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _bucket(text: str) -> str:
    try:
        return check_bucket_name(text)
    except BadBucketName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_dashboard_build(settings: Settings, args: argparse.Namespace) -> int:
    site = build_site(MINIMUM_ROLE, api_url=args.api_url or "")
    written = write_site(site, Path(args.out))
    print(f"wrote {len(written)} files to {args.out}/ (open {args.out}/index.html on a web host)")
    if args.api_url:
        print(f"the API at {args.api_url} must allow this site's origin: DJS_CORS_ORIGINS=...")
    return 0


def cmd_dashboard_publish(settings: Settings, args: argparse.Namespace) -> int:
    site = versioned_site(MINIMUM_ROLE, args.api_url)
    try:
        done = publish(site, args.bucket, public=not args.private)
    except PublishFailed as exc:
        raise CliError(str(exc)) from exc
    made = " (made it)" if done.created else ""
    print(f"published {len(done.uploaded)} files to s3://{done.bucket}{made} in {done.region}")
    print(f"removed {len(done.deleted)} stale files of an earlier publish")
    if aws.use_localstack() or os.environ.get("AWS_ENDPOINT_URL"):
        print("(an emulator's endpoint: its website address differs from AWS's below)")
    if done.public:
        print(f"the dashboard: {done.url}/ (HTTP only; for HTTPS put CloudFront in front)")
        origin = done.url
    else:
        print("the bucket is not public: serve it through CloudFront with Origin Access Control")
        origin = "https://<your CloudFront domain>"
    print(f"the API at {args.api_url} must allow this origin: DJS_CORS_ORIGINS={origin}")
    return 0


def add_dashboard_commands(sub: Any) -> None:
    dashboard = sub.add_parser("dashboard", help="the web dashboard as a static site")
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
    publish_ = verbs.add_parser(
        "publish", help="upload the site to an S3 website bucket (made if absent)"
    )
    publish_.add_argument("--bucket", type=_bucket, required=True, help="the S3 bucket")
    publish_.add_argument(
        "--api-url", type=_api_url, required=True, help="where the API answers (https://...)"
    )
    publish_.add_argument(
        "--private",
        action="store_true",
        help="no public read (Block Public Access on): for CloudFront with OAC",
    )
    publish_.set_defaults(func=cmd_dashboard_publish)
