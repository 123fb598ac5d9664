"""Crash points for the chaos suite: a named point kills the process when armed.

Armed from the DJS_FAULTS environment variable (comma-separated names) when this module is
first imported, or by adding to ARMED in a test process. Never set in production.
"""

from __future__ import annotations

import os

ARMED: set[str] = {name for name in os.environ.get("DJS_FAULTS", "").split(",") if name}


def crash_point(name: str) -> None:
    """Exit at once, as a crash would: no cleanup, no flush, exit code 70."""
    if name in ARMED:
        os._exit(70)
