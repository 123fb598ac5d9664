"""`djs workers`: the live runners, oldest first, straight from Postgres (as GET /workers)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import psycopg

from common import limits
from common.settings import Settings
from common.store.runners import live_runners


def cmd_workers(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = live_runners(conn, limits.MAX_RUNNERS_LISTED)
    print(json.dumps([{k: _text(v) for k, v in row.items()} for row in rows], indent=2))
    return 0


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def add_workers_command(sub: Any) -> None:
    workers = sub.add_parser(
        "workers",
        help="list the live runners (last beat within two of their intervals), oldest first",
    )
    workers.set_defaults(func=cmd_workers)
