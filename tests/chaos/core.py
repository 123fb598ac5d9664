"""What every piece of the chaos harness shares: the sizes, bounded waits, free ports, and
the one-line summary each scenario prints."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCALE = os.environ.get("DJS_CHAOS", "short")
FULL = SCALE == "full"
TERMINAL = ("completed", "failed", "cancelled")
Record = Callable[[str, dict[str, Any]], None]  # the `record` fixture: scenario, figures


def pick(short: Any, full: Any) -> Any:
    """The short (CI) or the full (DJS_CHAOS=full) size of a figure."""
    return full if FULL else short


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    step: float = 0.1,
    detail: Callable[[], Any] | None = None,
) -> float:
    """Poll until predicate() is truthy; return the seconds it took. AssertionError on
    timeout, with detail() in the message."""
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            extra = f": {detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}{extra}")
        time.sleep(step)


def results_dir(default: Path) -> Path:
    path = Path(os.environ.get("DJS_CHAOS_RESULTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def summary_line(name: str, figures: dict[str, Any]) -> str:
    flat = ", ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, dict | list))
    return f"[chaos {SCALE}] {name}: {flat}"
