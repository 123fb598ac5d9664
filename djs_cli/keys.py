"""`djs keys create|list|revoke|current`: API keys, straight in Postgres (DATABASE_URL), so
the first key is made without one."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import psycopg

from common.apikeys import MAX_RATE_PER_S, ROLES
from common.audit import Actor, AuditEntry
from common.pepper import PepperUnavailable, key_pepper
from common.settings import Settings
from common.store.keys import create_key, list_keys, revoke_key
from djs_cli import devstate
from djs_cli.errors import CliError, UsageError

_LISTED = ("id", "name", "role", "prefix", "created_at", "revoked_at", "last_used_at", "rate_per_s")


def pepper_of(settings: Settings) -> bytes:
    """The API's pepper, from the same source the API reads it from (common/pepper.py)."""
    try:
        return key_pepper(settings)
    except PepperUnavailable as exc:
        raise UsageError(
            f"{exc}. The API and `djs keys` need the same one (a running `djs dev` supplies "
            "its own)"
        ) from exc


def cmd_create(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        audit = AuditEntry(
            Actor.cli(), "key_create", selection={"name": args.name, "role": args.role}
        )
        row, key = create_key(conn, pepper_of(settings), args.name, args.role, args.rate, audit)
    print(key)
    print(
        f"created key {row['name']} (id {row['id']}, role {row['role']}): it is shown only "
        "this once",
        file=sys.stderr,
    )
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = list_keys(conn)
    print(json.dumps([{k: _text(r[k]) for k in _LISTED} for r in rows], indent=2))
    return 0


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    ident: int | str = int(args.key) if args.key.isdigit() else args.key
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = revoke_key(conn, ident, AuditEntry(Actor.cli(), "key_revoke"))
    print(f"revoked key {row['name']} (id {row['id']}); every API refuses it within 60 s")
    return 0


def cmd_current(settings: Settings, args: argparse.Namespace) -> int:
    key = current_key()
    if key is None:
        raise CliError("no key: set DJS_API_KEY, or start `djs dev`, which makes one")
    print(key)
    return 0


def current_key() -> str | None:
    """The key the CLI sends: DJS_API_KEY, else the admin key of a running `djs dev`."""
    if os.environ.get("DJS_API_KEY"):
        return os.environ["DJS_API_KEY"]
    state = devstate.read(devstate.state_file(devstate.default_data_dir()))
    return state.api_key if state is not None else None


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def add_key_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    verbs = keys.add_subparsers(dest="keys_command", required=True)
    create = verbs.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True)
    create.add_argument("--rate", type=_rate, help="requests/s; default: the role's")
    create.set_defaults(func=cmd_create)
    verbs.add_parser("list", help="list keys (never a secret)").set_defaults(func=cmd_list)
    revoke = verbs.add_parser("revoke", help="revoke a key by name or id")
    revoke.add_argument("key", help="its name or id")
    revoke.set_defaults(func=cmd_revoke)
    current = verbs.add_parser(
        "current", help="print the key the CLI uses (DJS_API_KEY or djs dev's)"
    )
    current.set_defaults(func=cmd_current)


def _rate(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_RATE_PER_S:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_RATE_PER_S:g}")
    return value
