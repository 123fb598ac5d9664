"""API keys: their format, their hash, and the roles they carry.

A key is ``djs_<prefix>_<secret>``: an 8-character prefix kept in clear to find its row, and
32 random bytes. Keys are long and random, so a fast keyed hash is enough (no password
stretching): HMAC-SHA256 with a server-side pepper, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# Lowest to highest; each role may do everything the ones before it may (api_app/auth/roles.py).
LADDER = ("submitter", "viewer", "operator", "admin")
# A scrape key (migration 011): it may call the routes that need "metrics" and nothing else;
# it is not above or below any role of the ladder. Admin may scrape too (admin may do all).
METRICS = "metrics"
ROLES = (*LADDER, METRICS)
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$"

_PREFIX_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
_SHAPE = re.compile(r"^djs_([a-z0-9]{8})_[A-Za-z0-9_-]{43}$")

MAX_RATE_PER_S = 1e6  # a key's own rate limit, requests per second: the API and the CLI


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix."""
    prefix = "".join(secrets.choice(_PREFIX_CHARS) for _ in range(8))
    return f"djs_{prefix}_{secrets.token_urlsafe(32)}", prefix


def prefix_of(key: str) -> str | None:
    """The lookup prefix of a well-formed key; None for anything else."""
    found = _SHAPE.match(key)
    return found.group(1) if found else None


def key_hash(pepper: bytes, key: str) -> bytes:
    return hmac.digest(pepper, key.encode(), hashlib.sha256)  # one-shot: twice as fast


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def at_least(role: str, minimum: str) -> bool:
    """May a key of `role` call a route whose least role is `minimum`?"""
    if role == METRICS or minimum == METRICS:
        return role in (minimum, "admin")
    return LADDER.index(role) >= LADDER.index(minimum)
