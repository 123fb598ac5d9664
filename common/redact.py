"""Secrets kept out of what djs shows: sensitive fields of payloads and results, and
passwords in server URLs.

Payload and result fields whose names are configured as sensitive (DJS_SENSITIVE_FIELDS,
matched case-insensitively at any depth) have their values replaced by `[redacted]` in log
lines and in the API's job reads; handlers still get the real values (they come from
Postgres through the claim). The work is bounded: the models cap JSON depth at 64.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
DEFAULT_SENSITIVE_FIELDS = "password,passwd,secret,token,api_key,apikey,authorization"

MASK = "***"
# key=value conninfo (`host=... password=secret`) and query strings (`?password=secret`).
_PASSWORD_VALUE = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)")


def sensitive_names(text: str) -> frozenset[str]:
    """`"Password, token"` -> {"password", "token"}: the names, lower-cased, blanks dropped."""
    return frozenset(name.strip().lower() for name in text.split(",") if name.strip())


def redact(value: Any, names: frozenset[str]) -> Any:
    """`value` with the values of sensitive keys replaced, at any depth. What holds nothing
    to redact is returned as it is (the same object), so the common case copies nothing."""
    if not names:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for key, item in value.items():
            new = REDACTED if str(key).lower() in names else redact(item, names)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [redact(item, names) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def without_password(url: str) -> str:
    """`postgresql://me:secret@host/db` -> `postgresql://me:***@host/db`; also masks
    `password=` in a query string or a key=value conninfo."""
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.partition(":")[0]
        url = urlunsplit(parts._replace(netloc=f"{name}:{MASK}@{host}"))
    return _PASSWORD_VALUE.sub(rf"\g<1>{MASK}", url)
