"""The dashboard scenario's table: N jobs across every state and several queues, written
set-based through the real tables and triggers (so the counts, the per-minute outcomes and
the attempts are what djs itself would have), with realistic payloads and errors."""

from __future__ import annotations

from typing import Any

QUEUES = ("default", "emails", "reports", "webhooks", "billing")
KINDS = ("invoice", "receipt", "reminder", "refund", "digest", "export")
_CHUNK = 100_000

# Job i of n: its state by i % 100 (70 % completed, 8 % failed, 2 % cancelled, 12 % pending,
# 6 % delayed, 2 % active), created over the last two hours, oldest first, so the newest
# jobs finished in the last minutes (GET /stats has samples) and the chart covers the hour.
# Every 11th job has a priority. Waiting jobs sit in paused queues, active ones hold a lease
# of a day: the runners the bench starts leave the table as it was filled.
_JOBS = """
INSERT INTO jobs (queue, type, payload, status, priority, attempts, max_attempts, run_at,
                  worker, result, last_error, fail_reason, created_at, updated_at, started_at,
                  finished_at, lease_token, lease_expires_at, owner_key_id, changed_by)
SELECT queues[1 + (i * 7919) %% array_length(queues, 1)], 'send_' || kinds[1 + i %% 6],
       jsonb_build_object('customer_id', i %% 50000, 'order_id', i,
                          'kind', kinds[1 + i %% 6],
                          'email', 'user' || (i %% 50000) || '@example.com',
                          'amount_cents', (i * 37) %% 100000,
                          'tags', jsonb_build_array('t' || (i %% 13), 'region-' || (i %% 7))),
       st, CASE WHEN i %% 11 = 0 THEN 1 + (i * 31) %% 1000 ELSE 0 END,
       CASE WHEN st IN ('pending', 'delayed', 'cancelled') THEN 0
            WHEN st = 'failed' THEN 3 ELSE 1 END, 3,
       CASE WHEN st = 'delayed' THEN now() + interval '1 day' END,
       CASE WHEN st IN ('active', 'completed', 'failed') THEN 'bench-host:' || (i %% 4) END,
       CASE WHEN st = 'completed' THEN jsonb_build_object('sent', true, 'id', i) END,
       CASE WHEN st = 'failed' THEN (ARRAY[
            'ConnectionError: timed out talking to smtp-' || (i %% 20)
                || '.mail.internal after 30 s',
            'ValueError: invoice ' || i || ' has no line items',
            'HTTPError: 503 Service Unavailable from https://hooks.example.com/' || (i %% 500),
            'KeyError: ''customer_' || (i %% 50000) || ''''])[1 + i %% 4] END,
       CASE WHEN st = 'failed' THEN 'exhausted'::fail_reason END,
       created, created,
       CASE WHEN st IN ('active', 'completed', 'failed') THEN created + interval '20 ms' END,
       CASE WHEN st IN ('completed', 'failed', 'cancelled')
            THEN created + (20 + (i * 13) %% 2000) * interval '1 ms' END,
       CASE WHEN st = 'active' THEN gen_random_uuid() END,
       CASE WHEN st = 'active' THEN now() + interval '1 day' END,
       CASE WHEN i %% 2 = 0 THEN %(owner)s::bigint END, 'api'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i,
     LATERAL (SELECT %(queues)s::text[] AS queues, %(kinds)s::text[] AS kinds,
                     now() - interval '2 hours' * (%(total)s - i)::float8 / %(total)s AS created,
                     (CASE WHEN i %% 100 < 70 THEN 'completed'
                           WHEN i %% 100 < 78 THEN 'failed'
                           WHEN i %% 100 < 80 THEN 'cancelled'
                           WHEN i %% 100 < 92 THEN 'pending'
                           WHEN i %% 100 < 98 THEN 'delayed'
                           ELSE 'active' END)::job_status AS st) AS shape
"""

# One attempt per started job (a failed one's last), as the claim and outcome would write it.
_ATTEMPTS = """
INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome,
                          error_type, error_message, queue, waited_ms)
SELECT id, attempts, worker, started_at, finished_at,
       status::text,
       split_part(last_error, ':', 1), last_error, queue,
       CASE WHEN attempts = 1 THEN extract(epoch FROM started_at - created_at) * 1000 END
FROM jobs WHERE id BETWEEN %(first)s AND %(last)s AND started_at IS NOT NULL
  AND status <> 'active'  -- a running attempt's row is written with its outcome
ORDER BY id
"""


def fill(conn: Any, total: int, owner_key_id: int | None) -> None:
    """Write `total` jobs (with their attempts) in statements of 100,000 rows."""
    conn.execute(
        "INSERT INTO queues (name, paused) SELECT unnest(%s::text[]), true"
        " ON CONFLICT (name) DO UPDATE SET paused = true",
        (list(QUEUES),),
    )
    for lo in range(1, total + 1, _CHUNK):
        hi = min(total, lo + _CHUNK - 1)
        params = {
            "lo": lo,
            "hi": hi,
            "total": total,
            "owner": owner_key_id,
            "queues": list(QUEUES),
            "kinds": list(KINDS),
        }
        ids = conn.execute(_JOBS + " RETURNING id", params).fetchall()
        first, last = ids[0][0], ids[-1][0]
        conn.execute(_ATTEMPTS, {"first": first, "last": last})
    conn.execute("VACUUM ANALYZE jobs")
    conn.execute("VACUUM ANALYZE job_attempts")
