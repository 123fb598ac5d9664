"""Server URLs as the CLI prints them: the password, wherever a URL can carry one, masked."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# key=value conninfo (`host=... password=secret`) and query strings (`?password=secret`).
_PASSWORD_VALUE = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)")


def without_password(url: str) -> str:
    """`postgresql://me:secret@host/db` -> `postgresql://me:***@host/db`; also masks
    `password=` in a query string or a key=value conninfo."""
    parts = urlsplit(url) if "://" in url else None
    if parts is not None and parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        name = user.partition(":")[0]
        url = urlunsplit(parts._replace(netloc=f"{name}:{MASK}@{host}"))
    return _PASSWORD_VALUE.sub(rf"\g<1>{MASK}", url)
