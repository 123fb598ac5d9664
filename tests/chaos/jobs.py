"""The jobs the scenarios submit through the library (not over HTTP)."""

from __future__ import annotations

from typing import Any

from common.models import JobOut, JobSubmission
from common.services import Services


def submit(svc: Services, jobs: list[JobSubmission]) -> list[JobOut]:
    """Submit through the library (Postgres commit, then Redis push), 1,000 per transaction."""
    out: list[JobOut] = []
    for i in range(0, len(jobs), 1000):
        out += [s.job for s in svc.manager.enqueue(jobs[i : i + 1000])]
    return out


def sleep_job(
    ms: float, tag: str = "-", cpu: bool = False, first_until: float = 0, **options: Any
) -> JobSubmission:
    """A chaos_sleep job: asleep for `ms`, or spinning on the CPU for `ms` if `cpu`; its
    first attempt lasts until the unix time `first_until` instead, if given."""
    payload = {"ms": ms, "tag": tag, "cpu": cpu, "first_until": first_until}
    return JobSubmission(type="chaos_sleep", payload=payload, **options)
