"""Rows of the jobs tables as the records and models the rest of djs uses.

Every row can be shown, whatever it holds (a row from before the bounds, or written with SQL;
common/store/loaders.py makes every value load): a JSON value nested too deep for the API's
serializer, or a payload that is not an object, is shown as a note that says so, and a
number JSON cannot carry (NaN, Infinity) as null. The runner still gets the values as stored.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from common.models import AttemptOut, EventOut, JobDetail, JobOut
from common.records import Dispatch

Row = dict[str, Any]

# pydantic's JSON serializer gives up at 255 levels of nesting, envelope included.
SHOWN_DEPTH = 200
UNSHOWN = "djs_unshown"  # the key of the note shown in place of a value


def job_out(row: Row) -> JobOut:
    return JobOut.model_validate(_shown(row))


def job_detail(row: Row, attempts: list[Row], events: list[Row]) -> JobDetail:
    return JobDetail(
        history=[AttemptOut(**_finite_fields(a, "progress", "duration_ms")) for a in attempts],
        events=[EventOut(**{k: v for k, v in e.items() if k != "total"}) for e in events],
        events_total=events[0]["total"] if events else 0,
        **_shown(row),
    )


def _shown(row: Row) -> Row:
    # attempts counts every run, released ones too; the budget counts from attempt_offset.
    return {
        **_finite_fields(row, "progress", "timeout_s"),
        "payload": _object(showable(row["payload"]), "payload"),
        "backoff": _object(showable(row["backoff"]), "backoff"),
        "result": showable(row["result"]),
        "attempts_made": row["attempts"] - row["attempt_offset"],
        "attempts_total": row["attempts"],
    }


def showable(value: Any) -> Any:
    """The value, or a note in its place when it nests deeper than SHOWN_DEPTH."""
    if not isinstance(value, dict | list):
        return value
    try:
        orjson.dumps(value)  # C speed, and it refuses 255 levels or more
        return value
    except TypeError:  # that, or an integer beyond 64 bits: measure
        pass
    depth = json_depth(value)
    if depth <= SHOWN_DEPTH:
        return value
    return {UNSHOWN: f"a JSON value nested {depth} levels deep; the API shows {SHOWN_DEPTH}"}


def json_depth(value: Any) -> int:
    """How deep containers nest in a JSON value (a scalar is 0). Iterative: any depth."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest if isinstance(value, dict | list) else 0


def _object(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return {UNSHOWN: f"the stored {name} is not a JSON object", "value": value}


def _finite_fields(row: Row, *names: str) -> Row:
    """JSON has no NaN or Infinity, which a real or float8 column can hold: shown as null."""
    bad = [n for n in names if isinstance(row[n], float) and not math.isfinite(row[n])]
    return {**row, **dict.fromkeys(bad)} if bad else row


def dispatches(rows: list[Row]) -> list[Dispatch]:
    return [Dispatch(**r) for r in rows]
