"""Logging for the long-running processes: one JSON object per line, or text for a human.

The stdlib's logging with a small formatter of our own rather than python-json-logger: the
formatter is ~40 lines, and it must redact sensitive fields of any context value it writes
(common/redact.py), which a library's formatter would need subclassing for anyway.

A line has `ts` (ISO-8601 UTC), `level`, `logger`, `msg`, then every context field passed
with `extra=` (job lines: job_id, queue, type, attempt, worker; see `job_fields`), and for an
exception `exc_type`, `exc` (its message) and `traceback`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from common.records import ClaimedJob
from common.redact import REDACTED, redact, sensitive_names
from common.settings import Settings

JSON = "json"
TEXT = "text"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every LogRecord has: the rest of its attributes are context passed with `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def job_fields(job: ClaimedJob, worker: str | None) -> dict[str, Any]:
    """The context every job-related line carries (pass as `extra=`)."""
    return {
        "job_id": job.id,
        "queue": job.queue,
        "type": job.type,
        "attempt": job.attempt,
        "worker": worker,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record; context values with sensitive fields are redacted."""

    def __init__(self, sensitive: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.sensitive = sensitive

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                sensitive = key.lower() in self.sensitive
                line[key] = REDACTED if sensitive else redact(value, self.sensitive)
        if record.exc_info and record.exc_info[0] is not None:
            exc = record.exc_info[1]
            line["exc_type"] = record.exc_info[0].__name__
            line["exc"] = str(exc)
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, fmt: str, sensitive: frozenset[str] = frozenset()) -> None:
    """Send every record at `level` or above to stderr, as `fmt` (json or text); replaces
    any handler installed before (basicConfig, a library's)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(sensitive) if fmt == JSON else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def configure_for(settings: Settings, default_format: str = JSON) -> None:
    """configure() as the settings say (DJS_LOG_LEVEL, DJS_LOG_FORMAT, DJS_SENSITIVE_FIELDS)."""
    fmt = settings.log_format or default_format
    configure(settings.log_level, fmt, sensitive_names(settings.sensitive_fields))
