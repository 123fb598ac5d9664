"""A handler that ignores cancellation, for `djs worker --import tests.hardening_handlers`.

`stubborn` sleeps payload.seconds in one call, whatever its context says: only a timeout (or
a cancel request's grace) frees its slot, and its thread leaks until the sleep ends.
"""

from __future__ import annotations

import time
from typing import Any

from chalice.app import Blueprint

from worker_app.registry import registry

bp = Blueprint(__name__)


@registry.handler(bp, "stubborn", timeout_s=600)
def stubborn(event: dict[str, Any], context: Any) -> Any:
    time.sleep(float(event["payload"].get("seconds", 600)))
    return {"slept": True}
