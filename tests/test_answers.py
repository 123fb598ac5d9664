"""Answers are written with orjson straight from the models' fields (common/fastjson.py's
dumps_answer): they must be exactly what pydantic's own JSON of the model would be."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from common import fastjson
from common.models import JobOut

NOW = datetime(2026, 12, 2, 10, 36, 11, 737926, tzinfo=ZoneInfo("Etc/UTC"))


def _job(**fields: Any) -> JobOut:
    row = dict(
        id=7, queue="default", type="echo", payload={"i": 1, "s": "é\u2028"}, status="failed",
        fail_reason="exhausted", priority=-3, attempts_made=2, attempts_total=5, max_attempts=3,
        backoff={"type": "exponential", "delay_ms": 1000}, timeout_s=1.5, run_at=None,
        worker="host:1", result=None, last_error="boom", progress=12.5, cancel_requested=False,
        idempotency_key=None, created_at=NOW, updated_at=NOW, started_at=None, finished_at=NOW,
    )  # fmt: skip
    return JobOut.model_validate({**row, **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"created_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no microseconds
        {"run_at": datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=2)))},
        {"result": {"nested": [1, 2.5, None, True, "x"]}},
        {"payload": {"big": 2**70}},  # beyond 64 bits: pydantic's way
        {"payload": {"n": 2**63 - 1, "f": 1e300, "neg": -0.0}},
    ],
)
def test_an_answer_is_what_pydantic_would_write(fields: dict[str, Any]) -> None:
    job = _job(**fields)
    body = {**job.__dict__, "created": True}
    expected = json.dumps(
        {**job.model_dump(mode="json"), "created": True}, separators=(",", ":"), ensure_ascii=False
    )
    assert json.loads(fastjson.dumps_answer(body)) == json.loads(expected)
    assert fastjson.dumps_answer(body) == expected or "big" in job.payload


def test_models_inside_an_answer_are_written_as_pydantic_would() -> None:
    job = _job()
    assert json.loads(fastjson.dumps_answer({"job": job})) == {"job": job.model_dump(mode="json")}
