"""JSON on the hot paths: orjson where it can, the standard library where it cannot.

The runner parsed every claimed job's payload and backoff, and serialized every outcome,
through the json module's Python layers (about a tenth of a busy runner's time, py-spy).
orjson does it in one C call, but cannot hold integers beyond 64 bits, which JSON and
jsonb allow: it refuses to write them and reads them as floats, losing digits. Those go
through the json module instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from pydantic_core import to_jsonable_python


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, or a key that is not a string
        return json.dumps(value)


def dumps_answer(value: Any) -> str:
    """An API answer that may hold datetimes (as RFC 3339, `Z` for UTC) and pydantic models.

    Plain values go through orjson in one call: a job's fields dumped straight from the model
    cost a quarter of `model_dump(mode="json")` and a dump. What orjson cannot write (a model,
    an integer beyond 64 bits) takes pydantic's conversion first, with the same result.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()
    except TypeError:
        return dumps(to_jsonable_python(value))


# 19 digits in a row may be an integer orjson would read as a float (2**63 has 19).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def loads(data: str | bytes) -> Any:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_DIGITS.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)
