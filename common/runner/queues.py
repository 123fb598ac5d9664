"""Which queues a runner serves, and in what order it looks at them.

`--queues emails:3,default` serves those queues, emails three times as often as default when
both have work. With no list a runner serves every queue, each with weight 1: the queues
Postgres knows (looked up again every `refresh_s`), and never fewer than it has seen.
The order is a smooth weighted round robin (nginx's): over any stretch of claims each queue
comes first in proportion to its weight, and no queue waits behind a burst of another.

`--queues high,low --strict` serves them in strict order instead: every turn looks at the
queues as listed, so a queue is served only while every queue before it has nothing to run.
Strict order takes no weights, and needs a list (the queues Postgres knows have no order).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from common.errors import InvalidInput
from common.models import NAME_PATTERN

MAX_WEIGHT = 100
_NUMBERISH = re.compile(r"^[-+]?[0-9.]+$")


def parse_queues(spec: str) -> dict[str, int]:
    """`a:3,b` -> {"a": 3, "b": 1}; InvalidInput names the entry that is wrong. A name may
    hold colons; what follows the last one is a weight when it looks like a number, and then
    it must be a whole number from 1 to MAX_WEIGHT."""
    weights: dict[str, int] = {}
    for entry in (e.strip() for e in spec.split(",")):
        name, _, tail = entry.rpartition(":")
        if not name or not _NUMBERISH.match(tail):
            name, tail = entry, "1"
        weight = int(tail) if tail.isdigit() else 0
        bad_name = not re.match(NAME_PATTERN, name) or name.startswith(":") or name in weights
        if bad_name or not 1 <= weight <= MAX_WEIGHT:
            raise InvalidInput(
                f"not a queue: {entry!r} (NAME or NAME:WEIGHT, weight 1-{MAX_WEIGHT}, "
                "each name once)",
                [{"path": "queues", "message": entry}],
            )
        weights[name] = weight
    return weights


def check_strict(weights: dict[str, int] | None) -> None:
    """Strict order needs a list of queues, without weights (InvalidInput says why)."""
    if weights is None:
        raise InvalidInput(
            "strict order needs the queues listed, first served first (--queues high,low)",
            [{"path": "queues", "message": "strict order without a list"}],
        )
    weighted = [f"{name}:{w}" for name, w in weights.items() if w != 1]
    if weighted:
        raise InvalidInput(
            f"strict order takes no weights: {', '.join(weighted)}",
            [{"path": "queues", "message": weighted[0]}],
        )


class QueueSelection:
    """The queues to look at, in this turn's order."""

    def __init__(
        self,
        weights: dict[str, int] | None,
        discover: Callable[[], Sequence[str]] | None = None,
        always: Sequence[str] = ("default",),
        refresh_s: float = 1.0,
        strict: bool = False,
    ) -> None:
        if strict:
            check_strict(weights)
        self.strict = strict
        self.fixed = weights is not None
        self.weights: dict[str, int] = dict(weights) if weights else dict.fromkeys(always, 1)
        self._discover = discover
        self._refresh_s = refresh_s
        self._refreshed = 0.0 if not self.fixed else float("inf")
        self._current: dict[str, int] = dict.fromkeys(self.weights, 0)

    @property
    def names(self) -> list[str]:
        return list(self.weights)

    def refresh(self, force: bool = False) -> None:
        """Serving every queue: add the queues Postgres knows now (at most every refresh_s
        unless forced). The watcher thread calls it, off the claim loop: a query there made
        delayed jobs start late. New dicts replace the old, so the claim loop never sees one
        change under it."""
        if self.fixed or self._discover is None:
            return
        if not force and time.monotonic() - self._refreshed < self._refresh_s:
            return
        self._refreshed = time.monotonic()
        new = [name for name in self._discover() if name not in self.weights]
        if new:
            self._current = {**self._current, **dict.fromkeys(new, 0)}
            self.weights = {**self.weights, **dict.fromkeys(new, 1)}

    def maybe_run(self) -> int:
        """As periodic upkeep (common/runner/watch.py): refresh when due."""
        self.refresh()
        return 0

    def order(self) -> list[str]:
        """Every queue once, the one whose turn it is first (smooth weighted round robin), or
        in strict order always as listed."""
        weights, current = self.weights, self._current
        if self.strict or len(weights) == 1:
            return list(weights)
        total = sum(weights.values())
        for name, weight in weights.items():
            current[name] = current.get(name, 0) + weight
        first = max(weights, key=lambda n: current[n])
        current[first] -= total
        rest = sorted((n for n in weights if n != first), key=lambda n: -current[n])
        return [first, *rest]
