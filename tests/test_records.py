"""Due times as integer milliseconds: Redis must never promote a job before Postgres's run_at.

A run_at has microseconds, the dispatch encoding has milliseconds: both the Redis push
(`Ready.due_ms`) and the NOTIFY payload of the transactional enqueue must round **up**. The old
NOTIFY encoder was `int(run_at.timestamp() * 1000)`, which truncates: for a run_at of
12:00:00.000400 it said 12:00:00.000, a job Redis then promoted 0.4 ms early, Postgres refused
to claim, and that waited for the upkeep. `test_the_samples_catch_a_truncating_encoder` shows
that the same assertions fail on that encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from hypothesis import example, given
from hypothesis import strategies as st

from common.enqueue import enqueue
from common.records import Ready, due_ms, from_due_ms
from common.store.notify import CHANNEL, notify_enqueued, parse_payload

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]


def micros(when: datetime) -> int:
    """Microseconds since the epoch, exactly (timedelta // timedelta is integer arithmetic)."""
    return (when - _EPOCH) // _MICRO


def assert_due(encoded: int, run_at: datetime) -> None:
    """Never before run_at, and less than one millisecond after it."""
    exact = micros(run_at)
    assert encoded * 1000 >= exact, f"{run_at.isoformat()} encoded {encoded}: early"
    assert encoded * 1000 - exact < 1000, f"{run_at.isoformat()} encoded {encoded}: late"


def sub_ms_samples() -> list[datetime]:
    """Every microsecond 0..999 within one millisecond, at several instants and offsets."""
    bases = [
        datetime(2024, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(2031, 6, 1, 12, 0, 0, 0, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 59, 58, 123_000, tzinfo=UTC),
    ]
    return [
        (base + timedelta(microseconds=us)).astimezone(zone)
        for base in bases
        for zone in _ZONES
        for us in range(1000)
    ]


def test_due_ms_rounds_every_sub_millisecond_fraction_up() -> None:
    for run_at in sub_ms_samples():
        assert_due(due_ms(run_at), run_at)
        assert_due(Ready(1, "q", 0, run_at).due_ms, run_at)  # what the Redis push sends


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(_ZONES),
    )
)
@example(datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
@example(datetime(2030, 1, 1, 0, 0, 0, 999, tzinfo=UTC))
@example(datetime(2030, 1, 1, 0, 0, 0, 1000, tzinfo=UTC))
def test_due_ms_is_never_early_and_less_than_a_ms_late(run_at: datetime) -> None:
    assert_due(due_ms(run_at), run_at)
    back = from_due_ms(due_ms(run_at))
    assert back >= run_at and back - run_at < timedelta(milliseconds=1)


@given(st.integers(min_value=1, max_value=2**42))
def test_from_due_ms_is_the_exact_inverse(ms: int) -> None:
    assert due_ms(from_due_ms(ms)) == ms


def test_the_samples_catch_a_truncating_encoder() -> None:
    """The assertions above would fail on the old NOTIFY encoder: they can fail."""

    def truncating(run_at: datetime) -> int:
        return int(run_at.timestamp() * 1000)

    early = [t for t in sub_ms_samples() if truncating(t) * 1000 < micros(t)]
    # Every fraction from 1 to 999 us is truncated away; float error may spare a few.
    assert len(early) > len(sub_ms_samples()) * 0.9


# --- the NOTIFY path, through a real Postgres ------------------------------------------------


def _notified(
    database_url: str, send: Callable[[psycopg.Connection[Any]], Any], expected: int
) -> list[Ready]:
    """What a LISTENing connection receives once `send` has run in a committed transaction."""
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        with psycopg.connect(database_url) as conn:  # one transaction, committed on exit
            send(conn)
            # Postgres delivers a NOTIFY only on commit: nothing may have arrived yet.
            assert list(listener.notifies(timeout=0.2, stop_after=1)) == []
        ready: list[Ready] = []
        for note in listener.notifies(timeout=10):
            ready += parse_payload(note.payload)
            if len(ready) >= expected:
                break
        return ready


def test_notify_payload_gives_the_redis_encoding_and_is_never_early(database_url: str) -> None:
    samples = sub_ms_samples()[::7]  # several notifications of 100 jobs each
    sent = [Ready(i + 1, "q", 0, run_at) for i, run_at in enumerate(samples)]
    received = _notified(database_url, lambda conn: notify_enqueued(conn, sent), len(sent))
    assert [r.id for r in received] == [r.id for r in sent]
    for run_at, pushed, got in zip(samples, sent, received, strict=True):
        assert got.due is not None and got.due >= run_at
        assert got.due_ms == pushed.due_ms  # the integer the Redis push uses
        assert_due(got.due_ms, run_at)


def test_a_transactional_enqueue_is_announced_no_earlier_than_its_stored_run_at(
    database_url: str,
) -> None:
    """Through common.enqueue: the NOTIFY's due time against the run_at Postgres stored."""
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    run_ats = [base + timedelta(microseconds=us) for us in (1, 400, 500, 999, 1001)]

    def send(conn: psycopg.Connection[Any]) -> None:
        for run_at in run_ats:
            enqueue(conn, "echo", run_at=run_at)

    received = _notified(database_url, send, len(run_ats))
    with psycopg.connect(database_url) as conn:
        stored: dict[int, datetime] = dict(conn.execute("SELECT id, run_at FROM jobs").fetchall())
    assert sorted(stored.values()) == run_ats  # Postgres keeps the microseconds
    assert sorted(r.id for r in received) == sorted(stored)
    for got in received:
        assert_due(got.due_ms, stored[got.id])
