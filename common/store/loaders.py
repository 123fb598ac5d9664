"""Loading is total: every value Postgres stores in djs's tables becomes a Python value.

Rows can hold what the API's bounds (common/limits.py) would refuse: rows from before the
bounds, or written with SQL. Two kinds did not load, and an error while loading one row
broke every read and upkeep loop that met it:

- a timestamptz outside Python's years 1 to 9999 (Postgres allows 4713 BC to 294276 AD and
  ±infinity; `9999-12-31T23:59:59-14:00` is year 10000 in UTC): loaded clamped to
  datetime.min or datetime.max in UTC, a value no djs write produces, so it says what
  happened. The janitor fails waiting jobs whose run_at is such a time (invalid_record);
- a jsonb the fast parsers refuse: nested deeper than orjson's 1,024 levels or json's
  recursion limit, or holding an integer of over 4,300 digits (Python's int() limit).
  Loaded by an iterative parser instead, as it is (such an integer as a float).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.postgres import types as pg_types

from common import fastjson

EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_TIMESTAMPTZ = pg_types["timestamptz"].oid
_JSONB = pg_types["jsonb"].oid


def _clamped_text(data: bytes) -> datetime | None:
    """The edge a timestamptz in text form lies beyond, or None if it is not out of range:
    `-infinity` and years BC are before year 1; `infinity` and 5-digit years after 9999."""
    if data.startswith(b"-") or data.endswith(b" BC"):
        return EARLIEST
    if data == b"infinity" or data.find(b"-") > 4:
        return LATEST
    return None


class _ClampedTimestamptzLoader(Loader):
    """psycopg's own (C) loader, with times out of Python's range clamped, not an error."""

    _inner_class = psycopg.adapters.get_loader(_TIMESTAMPTZ, pq.Format.TEXT)

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        assert self._inner_class is not None
        self._inner = self._inner_class(oid, context)

    def load(self, data: Buffer) -> datetime:
        try:
            return self._inner.load(data)  # type: ignore[no-any-return]
        except psycopg.DataError:
            edge = self._edge(bytes(data))
            if edge is None:
                raise
            return edge

    def _edge(self, data: bytes) -> datetime | None:
        return _clamped_text(data)


class _ClampedTimestamptzBinaryLoader(_ClampedTimestamptzLoader):
    format = pq.Format.BINARY
    _inner_class = psycopg.adapters.get_loader(_TIMESTAMPTZ, pq.Format.BINARY)

    def _edge(self, data: bytes) -> datetime | None:
        # Microseconds since 2000-01-01 UTC: only a time out of range fails to load.
        return LATEST if int.from_bytes(data, "big", signed=True) > 0 else EARLIEST


class _TotalJsonbLoader(Loader):
    def load(self, data: Buffer) -> Any:
        return load_json(bytes(data))


class _TotalJsonbBinaryLoader(Loader):
    format = pq.Format.BINARY

    def load(self, data: Buffer) -> Any:
        return load_json(bytes(data)[1:])  # after the format's version byte


def load_json(raw: bytes) -> Any:
    """JSON text Postgres produced: at C speed when the fast parsers take it, else iteratively."""
    try:
        return fastjson.loads(raw)
    except (ValueError, RecursionError):
        return loads_iteratively(raw.decode())


# One token of JSON: an opening or closing bracket, a separator, the start of a string, a
# number or a literal. Postgres wrote the text, so it is valid JSON; no need to check it.
_TOKEN = re.compile(
    r"\s*(?:([\[{])|([\]}])|([,:])|(\")|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(true|false|null))"
)
_LITERALS = {"true": True, "false": False, "null": None}
# The json module's C string scanner: escapes and surrogate pairs as json.loads reads them.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_INT_DIGITS = 4300  # int() refuses longer decimal strings (sys.get_int_max_str_digits)


def loads_iteratively(text: str) -> Any:
    """Parse JSON with a stack of open containers instead of recursion: any depth loads."""
    containers: list[Any] = []
    keys: list[str] = []  # the key of each value still to be placed in an open object
    expect_key, pos = False, 0
    while True:
        found = _TOKEN.match(text, pos)
        if found is None:
            raise ValueError(f"not JSON at character {pos}")
        pos = found.end()
        opening, closing, separator = found.group(1, 2, 3)
        if opening or separator:
            if opening:
                containers.append({} if opening == "{" else [])
            # A key comes next after `{` or after a `,` inside an object.
            expect_key = (opening or separator) in "{," and isinstance(containers[-1], dict)
            continue
        if closing:
            value = containers.pop()
        else:
            value, pos = _scalar(found, text, pos)
            if expect_key:
                keys.append(value)
                expect_key = False
                continue
        if not containers:
            return value
        if isinstance(containers[-1], list):
            containers[-1].append(value)
        else:
            containers[-1][keys.pop()] = value


def _scalar(found: re.Match[str], text: str, pos: int) -> tuple[Any, int]:
    """The string, number or literal `found` starts, and where the text goes on after it."""
    quote, number, literal = found.group(4, 5, 6)
    if quote:
        return _scanstring(text, pos)
    if number:
        return _number(number), pos
    return _LITERALS[literal], pos


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE") or len(text.lstrip("-")) > _INT_DIGITS:
        return float(text)
    return int(text)


def total_adapters() -> AdaptersMap:
    """psycopg's adapters with these loaders: for the connections of djs's pools."""
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_loader(_TIMESTAMPTZ, _ClampedTimestamptzLoader)
    adapters.register_loader(_TIMESTAMPTZ, _ClampedTimestamptzBinaryLoader)
    adapters.register_loader(_JSONB, _TotalJsonbLoader)
    adapters.register_loader(_JSONB, _TotalJsonbBinaryLoader)
    return adapters
