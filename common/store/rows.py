"""Rows of the jobs tables as the records and models the rest of djs uses."""

from __future__ import annotations

from typing import Any

from common.models import AttemptOut, EventOut, JobDetail, JobOut
from common.records import Dispatch

Row = dict[str, Any]


def job_out(row: Row) -> JobOut:
    return JobOut.model_validate(_shown(row))


def job_detail(row: Row, attempts: list[Row], events: list[Row]) -> JobDetail:
    return JobDetail(
        history=[AttemptOut(**a) for a in attempts],
        events=[EventOut(**e) for e in events],
        **_shown(row),
    )


def _shown(row: Row) -> Row:
    # attempts counts every run, released ones too; the budget counts from attempt_offset.
    return {
        **row,
        "attempts_made": row["attempts"] - row["attempt_offset"],
        "attempts_total": row["attempts"],
    }


def dispatches(rows: list[Row]) -> list[Dispatch]:
    return [Dispatch(**r) for r in rows]
