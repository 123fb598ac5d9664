"""Is a runner alive? Each of its loops reports its state; one rule says which are unhealthy.

A loop is unhealthy when it is not running, when it keeps dying (restarted RESTARTS_UNHEALTHY
times within RESTART_WINDOW_S: a supervisor that restarts it is then only hiding a bug), or
when it has made no progress for far longer than its interval (it hangs). A dependency that
is down is not the probe's business: the loops wait it out with backoff and go on beating,
and restarting the process would not bring Postgres back.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

RESTART_WINDOW_S = 60.0
RESTARTS_UNHEALTHY = 3
# Silent for STALL_FACTOR intervals, and never less than STALL_FLOOR_S: a janitor batch or a
# slow commit may hold a loop for seconds, a hang holds it for good.
STALL_FACTOR = 20
STALL_FLOOR_S = 30.0


class Pulse:
    """When a loop last made progress: the loop beats once per turn (a float store, no lock)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()


class Restarts:
    """How often a loop died, the recent deaths, and the last error."""

    def __init__(self) -> None:
        self.count = 0
        self.last_error: str | None = None
        self._times: deque[float] = deque(maxlen=RESTARTS_UNHEALTHY)

    def died(self, error: BaseException) -> None:
        self.count += 1
        self.last_error = f"{type(error).__name__}: {error}"[:500]
        self._times.append(time.monotonic())

    def recent(self, now: float) -> int:
        """Deaths within the window (counted up to RESTARTS_UNHEALTHY)."""
        return sum(1 for t in list(self._times) if now - t <= RESTART_WINDOW_S)


@dataclass(frozen=True)
class LoopState:
    alive: bool
    restarts: int = 0
    recent_restarts: int = 0
    last_error: str | None = None
    silent_s: float | None = None  # since the last beat; None: the loop does not beat
    interval_s: float | None = None


def loop_state(
    alive: bool, pulse: Pulse | None, restarts: Restarts | None, now: float
) -> LoopState:
    return LoopState(
        alive=alive,
        restarts=restarts.count if restarts else 0,
        recent_restarts=restarts.recent(now) if restarts else 0,
        last_error=restarts.last_error if restarts else None,
        silent_s=round(now - pulse.last, 3) if pulse else None,
        interval_s=pulse.interval_s if pulse else None,
    )


def problem(state: LoopState) -> str | None:
    """Why this loop is unhealthy, or None."""
    if not state.alive:
        return "not running"
    if state.recent_restarts >= RESTARTS_UNHEALTHY:
        return f"died {state.recent_restarts} times within {RESTART_WINDOW_S:g} s"
    if state.silent_s is not None and state.interval_s is not None:
        limit = max(STALL_FACTOR * state.interval_s, STALL_FLOOR_S)
        if state.silent_s > limit:
            return f"no progress for {state.silent_s:.0f} s (limit {limit:g} s)"
    return None


def report(loops: dict[str, LoopState], **details: Any) -> dict[str, Any]:
    """{"status": "ok" | "unhealthy", "unhealthy": [names], "loops": {...}, **details}."""
    shown = {name: {**asdict(state), "problem": problem(state)} for name, state in loops.items()}
    sick = [name for name, state in shown.items() if state["problem"]]
    return {
        "status": "unhealthy" if sick else "ok",
        "unhealthy": sick,
        "loops": shown,
        **details,
    }
