"""Every bound djs puts on what it is given, in one place. Checked at the edge (common/models.py)
before anything is written, so the store, the runner and the upkeep can trust what they read."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_BATCH = 1000  # jobs per POST /jobs/batch, ids per filter, jobs per bulk statement
MAX_BULK = 100_000  # jobs one bulk verb may touch
BIGINT = 2**63 - 1  # Postgres bigint: every id and cursor
MAX_JSON_DEPTH = 64  # nesting of a payload or result
MAX_OFFSET = timedelta(hours=14)  # the widest time-zone offset in use
TIME_WINDOW = timedelta(days=366)  # run_at within a year of now, either way
WEEK_MS = 7 * 24 * 3600 * 1000
MAX_BACKOFF_MS = WEEK_MS  # no wait between attempts is longer, whatever the formula gives
MAX_AGE_S = 10 * 366 * 24 * 3600  # retention and clean ages: ten years
MAX_KEEP = 100_000_000  # retention and clean counts
MAX_RESULT_CHARS = 1 << 20  # a handler's result, as JSON; a larger one fails the job
MAX_ERROR_CHARS = 16 << 10  # an attempt's error message (and each log line): truncated
MAX_TRACEBACK_CHARS = 64 << 10  # an attempt's traceback: truncated
MAX_LOG_LINE_CHARS = 2000  # one line of an attempt's log
MAX_HISTORY = 50  # attempts a job's detail shows, the newest (attempts_total counts them all)
MAX_EVENTS = 200  # events a job's detail shows, the newest (events_total counts them all)
MAX_LOG_CHARS = 64 << 10  # an attempt's log lines in all; later lines are counted, not kept
MIN_BEAT_INTERVAL_S = 0.1  # a runner's registry beat: not a busy loop on Postgres ...
MAX_BEAT_INTERVAL_S = 300.0  # ... nor so rare that a dead runner is listed for ten minutes
MAX_CONCURRENCY = 4096  # handler threads one runner process runs: each holds a stack
MAX_RUNNERS_LISTED = 1000  # runners GET /workers lists, the oldest
MAX_PRIORITY = 1000  # a job's priority runs from 0 to this
MAX_SEARCH_FRAGMENT = 4 << 10  # GET /jobs?payload=: a JSON object as text
MAX_SEARCH_TEXT = 200  # GET /jobs?text= and ?error=
TEXT_SCAN = 10_000  # jobs one page of GET /jobs?text= looks at (no index holds payload text)
STATS_SAMPLE = 10_000  # newest attempts GET /stats computes its percentiles from
STATS_MINUTES = 60  # GET /stats: outcomes per minute over the last hour
STATS_WINDOW_S = 300  # GET /stats: latencies of the last five minutes


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why Postgres's jsonb (or djs) would refuse this JSON value, or None: nested at most
    `max_depth` deep, no NaN or Infinity, and strings that are valid Unicode without NUL.
    Iterative, so a hostile nesting cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if reason := text_problem(item):
                return reason
        elif isinstance(item, float) and not math.isfinite(item):
            return f"the number {item} (JSON has no NaN or Infinity)"
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                return f"nesting deeper than {max_depth} levels"
            children = (
                [x for pair in item.items() for x in pair] if isinstance(item, dict) else item
            )
            stack.extend((child, depth + 1) for child in children)
    return None


def text_problem(text: str) -> str | None:
    """Why Postgres text would refuse this string: a NUL, or a lone surrogate (not Unicode)."""
    if "\x00" in text:
        return "the NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def time_problem(when: datetime, window: timedelta | None = TIME_WINDOW) -> str | None:
    """Why a client's time is refused: an offset beyond ±14:00, or (with a window) more than
    that far from now. Postgres would store such a time and djs could not read it back."""
    offset = when.utcoffset()
    if offset is None:
        return "a time zone is required"
    if abs(offset) > MAX_OFFSET:
        return "the time-zone offset is beyond ±14:00"
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        return "the time is out of range"
    if window is not None and abs(utc - datetime.now(UTC)) > window:
        return f"the time is more than {window.days} days from now"
    if not 1970 <= utc.year <= 9000:
        return "the time is out of range"
    return None


MAX_METRIC_LABEL_SETS = 500  # distinct (queue, type) label sets a process's metrics keep
MAX_METRIC_QUEUES = 500  # queues a scrape reports depth, lag and runners for
MIN_ALERT_INTERVAL_S = 1.0  # one alert POST per (queue, kind) per this at the most often ...
MAX_ALERT_INTERVAL_S = 7 * 24 * 3600.0  # ... and a window no longer than a week
MAX_ALERT_LAG_S = 366 * 24 * 3600.0  # a schedule-lag threshold within a year
MAX_ALERT_URL_CHARS = 2000
MAX_ALERT_JOBS = 20  # failed jobs named in one alert (the count covers them all)
MAX_ALERT_ERROR_CHARS = 500  # each one's last error, truncated
MAX_ALERT_QUEUES = 1000  # queues with alerts one loop turn looks at
ALERT_TIMEOUT_S = 5.0  # connect and read, per POST
ALERT_READ_BYTES = 4096  # of the receiver's answer, at most
MAX_SQS_QUEUE_URLS = 100  # entries of DJS_SQS_QUEUE_URLS
