"""`djs dev`'s pepper and first admin key, kept in ``<data dir>/secrets.json`` (mode 0600).

dev.json lives only while `djs dev` runs; this file stays, like the embedded database it
belongs to, so a restart reuses the pepper (keys made earlier keep working) and the admin
key. The key is printed when it is made; dev.json carries both while `djs dev` runs, which
is how the other commands find them (`djs keys current`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from common.apikeys import key_hash, prefix_of, same_hash
from common.errors import Conflict
from common.store.keys import create_key, key_by_prefix

FILE_NAME = "secrets.json"
ADMIN_NAME = "dev-admin"


@dataclass(frozen=True)
class DevKeys:
    pepper: str
    api_key: str
    created: bool  # made by this start: print it


def ensure_dev_keys(data_dir: Path, database_url: str, pepper: str | None) -> DevKeys:
    """The pepper (the environment's, else the kept one, else a new one) and an admin key
    that works in this database (the kept one, else a new one)."""
    path = data_dir / FILE_NAME
    kept = _read(path)
    pepper = pepper or kept.get("key_pepper") or secrets.token_hex(32)
    key = kept.get("api_key") if kept.get("key_pepper") == pepper else None
    with psycopg.connect(database_url, autocommit=True) as conn:
        created = key is None or not _works(conn, pepper.encode(), key)
        if created:
            key = _new_admin(conn, pepper.encode())
    assert key is not None
    _write(path, {"key_pepper": pepper, "api_key": key})
    return DevKeys(pepper, key, created)


def _works(conn: psycopg.Connection[Any], pepper: bytes, key: str) -> bool:
    prefix = prefix_of(key)
    row = key_by_prefix(conn, prefix) if prefix else None
    return bool(row and row["revoked_at"] is None and same_hash(row["hash"], key_hash(pepper, key)))


def _new_admin(conn: psycopg.Connection[Any], pepper: bytes) -> str:
    for name in (ADMIN_NAME, f"{ADMIN_NAME}-{secrets.token_hex(3)}"):
        with contextlib.suppress(Conflict):
            return create_key(conn, pepper, name, "admin")[1]
    raise Conflict("could not name the dev admin key")


def _read(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(values, indent=2) + "\n")
    os.replace(partial, path)
