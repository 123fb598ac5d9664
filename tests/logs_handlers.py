"""Handlers for the log tests, for `djs worker --import tests.logs_handlers`.

`secret_echo` proves the handler got the real secrets: it returns the password's length,
the nested token's SHA-256, and the token itself under a sensitive name (stored as it is,
shown redacted). `kaput` always fails.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chalice.app import Blueprint

from worker_app.registry import registry

bp = Blueprint(__name__)


@registry.handler(bp, "secret_echo")
def secret_echo(event: dict[str, Any], context: Any) -> Any:
    payload = event["payload"]
    token = payload["nested"]["Token"]
    return {
        "password_len": len(payload["password"]),
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "token": token,
    }


@registry.handler(bp, "kaput")
def kaput(event: dict[str, Any], context: Any) -> Any:
    raise ValueError("kaput on purpose")
