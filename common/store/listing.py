"""GET /jobs: a page of jobs in one of three orders, filtered and searched, keyset-paginated
and bounded by rows and bytes (the list_* blocks of queries.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from common import limits
from common.models import JobOut, ListQuery
from common.store.pool import Row
from common.store.rows import job_out
from common.store.sqlfile import QUERIES as Q

# sort=priority orders by (priority desc, id): its cursor carries both in one integer, so a
# page goes on from where the last one stopped even if that job was removed meanwhile.
_PRIORITIES = 1001  # priorities 0..1000


@dataclass(frozen=True)
class Page:
    jobs: list[JobOut]
    more: bool  # jobs may follow (the rows or the bytes ran out)
    next_cursor: int | None  # where the next page starts when `jobs` ends early; else None


def priority_cursor(job_id: int, priority: int) -> int:
    return job_id * _PRIORITIES + (limits.MAX_PRIORITY - priority)


def cursor_of(sort: str, job_id: int, priority: int) -> int:
    """The cursor that goes on after this job in this order."""
    return priority_cursor(job_id, priority) if sort == "priority" else job_id


def _like(text: str | None) -> str | None:
    """`text` as an ILIKE pattern matching it anywhere, its wildcards taken literally."""
    if text is None:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _params(query: ListQuery, max_bytes: int, owner_key_id: int | None) -> dict[str, Any]:
    fragment = query.payload_fragment()
    params = {
        **query.model_dump(),
        "payload": Jsonb(fragment) if fragment is not None else None,
        "text": _like(query.text),
        "error": _like(query.error),
        "owner_key_id": owner_key_id,
        "max_bytes": max_bytes,
        "scan": limits.TEXT_SCAN if query.text is not None else query.limit,
        "after_priority": limits.MAX_PRIORITY + 1,
        "after_id": 0,
    }
    if query.sort == "priority" and query.cursor is not None:
        params["after_id"], rest = divmod(query.cursor, _PRIORITIES)
        params["after_priority"] = limits.MAX_PRIORITY - rest
    return params


def list_page(
    conn: psycopg.Connection[Row], query: ListQuery, max_bytes: int, owner_key_id: int | None
) -> Page:
    """A page of at most query.limit jobs and about max_bytes (at least one job)."""
    params = _params(query, max_bytes, owner_key_id)
    # Unprepared: a custom plan for the parameters given (see queries.sql).
    rows = conn.execute(Q[f"list_{query.sort}"], params, prepare=False).fetchall()
    jobs = [job_out(r) for r in rows]
    full = bool(rows) and rows[-1]["bytes_before"] + rows[-1]["shown_bytes"] >= max_bytes
    if full or len(rows) == query.limit or query.text is None:
        return Page(jobs, full or len(rows) == query.limit, None)
    # A text search that found fewer than a page: it goes on after the last job it scanned,
    # if it scanned a whole budget (more jobs may match further on).
    end = conn.execute(Q[f"scan_end_{query.sort}"], params, prepare=False).fetchone()
    if end is None or end["scanned"] < params["scan"]:
        return Page(jobs, False, None)
    return Page(jobs, True, cursor_of(query.sort, end["id"], end["priority"]))
