"""Reconnect delays with full jitter, so hundreds of runners do not stampede a server."""

from __future__ import annotations

import random


class ReconnectBackoff:
    """Exponential from `base_s` up to `cap_s`, each delay drawn uniformly from [0, d]."""

    def __init__(self, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2**self.failures)
        self.failures += 1
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self.failures = 0
