"""The jobs triggers stay linear in the rows of a statement, whatever statement came first.

PL/pgSQL plans a trigger's queries once per connection and keeps the plan. A first UPDATE of
one row used to leave the update trigger a nested loop over its transition tables, so every
later batch of n rows compared n^2 pairs (migration 010). auto_explain shows the plan each
trigger statement really ran with, as notices on this connection.
"""

from __future__ import annotations

import re

import psycopg

BATCH = 60


def _trigger_plans(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> list[str]:
    plans: list[str] = []

    def keep(notice: psycopg.errors.Diagnostic) -> None:
        plans.append(notice.message_primary or "")

    conn.add_notice_handler(keep)
    conn.execute(statement)
    conn.remove_notice_handler(keep)
    return [plan for plan in plans if "new_rows" in plan]


def _explaining(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("LOAD 'auto_explain'")
    for name, value in (
        ("auto_explain.log_min_duration", "0"),
        ("auto_explain.log_nested_statements", "on"),
        ("auto_explain.log_analyze", "on"),
        ("auto_explain.log_level", "notice"),
    ):
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))


def test_a_batch_after_a_single_row_update_is_not_a_nested_loop(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (queue, type, payload, status) "
            "SELECT 'q', 'echo', '{}', 'pending' FROM generate_series(1, %s)",
            (BATCH + 1,),
        )
        _explaining(conn)
        claim = (
            "UPDATE jobs SET status = 'active', attempts = attempts + 1, "
            "lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute', "
            "started_at = now(), changed_by = 'runner' "
            "WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' ORDER BY id LIMIT {})"
        )
        first = _trigger_plans(conn, claim.format(1))  # the plan is made and kept here
        batch = _trigger_plans(conn, claim.format(BATCH))
        events = conn.execute("SELECT count(*) FROM job_events WHERE to_status = 'active'")
        assert events.fetchone() == (BATCH + 1,)  # the trigger still did its work

    assert first and batch, "auto_explain showed no plan of the update trigger"
    plan = "\n".join(batch)
    # Each scan of a transition table runs once; a nested loop rescans one per outer row.
    loops = [int(n) for n in re.findall(r"Named Tuplestore Scan .*?loops=(\d+)", plan)]
    assert loops and max(loops) == 1, plan
