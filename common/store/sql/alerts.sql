-- Alert hooks per queue (migration 012); common/store/alerts.py.

-- name: put_alert
WITH a AS (
    INSERT INTO queue_alerts (queue, url, lag_threshold_s, min_interval_s)
    VALUES (%(queue)s, %(url)s, %(lag_threshold_s)s, %(min_interval_s)s)
    ON CONFLICT (queue) DO UPDATE
        SET url = EXCLUDED.url, lag_threshold_s = EXCLUDED.lag_threshold_s,
            min_interval_s = EXCLUDED.min_interval_s, updated_at = now()
    RETURNING queue, url, lag_threshold_s, min_interval_s
), s AS (
    INSERT INTO queue_alert_sends (queue, kind)
    SELECT a.queue, k FROM a, unnest(ARRAY['failed', 'schedule_lag', 'no_runners']) AS k
    ON CONFLICT DO NOTHING
)
SELECT * FROM a;

-- name: get_alert
SELECT queue, url, lag_threshold_s, min_interval_s FROM queue_alerts WHERE queue = %(queue)s;

-- name: delete_alert
DELETE FROM queue_alerts WHERE queue = %(queue)s RETURNING queue;

-- name: list_alerts
-- Bounded: one row per queue an admin configured.
SELECT queue, url, lag_threshold_s, min_interval_s FROM queue_alerts ORDER BY queue LIMIT %(limit)s;

-- name: failed_mark
-- The watermark, how far it may move (`settled`), and the failures in between. A failure's
-- finished_at is its transaction's start (now()), and it may commit after a later one: the
-- watermark never passes the start of a transaction still running on this database (one
-- running over a minute excepted), so every failure at or before `settled` has committed and
-- a later statement sees it. None is told twice (the mark only moves) or missed.
WITH running AS (
    SELECT min(xact_start) AS oldest FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
), settled AS (
    SELECT least(now(), greatest(coalesce(r.oldest - interval '1 microsecond', now()),
                                 now() - interval '1 minute')) AS settled
    FROM running r
)
SELECT s.mark, t.settled,
       (SELECT count(*) FROM jobs j
        WHERE j.queue = %(queue)s AND j.status = 'failed' AND j.finished_at > s.mark
          AND j.finished_at <= t.settled) AS new_failed
FROM queue_alert_sends s, settled t WHERE s.queue = %(queue)s AND s.kind = 'failed';

-- name: claim_send
-- The rate limit across every process that runs the loop: the first to move last_sent_at
-- sends; `mark` guards the failed watermark (the caller read it), so no failure is told twice,
-- and `new_mark` is where failed_mark said it may move.
UPDATE queue_alert_sends s
SET last_sent_at = now(),
    mark = CASE WHEN s.kind = 'failed' THEN %(new_mark)s::timestamptz ELSE s.mark END
FROM queue_alerts a
WHERE s.queue = a.queue AND s.queue = %(queue)s AND s.kind = %(kind)s
  AND (%(mark)s::timestamptz IS NULL OR s.mark = %(mark)s::timestamptz)
  AND (s.last_sent_at IS NULL
       OR s.last_sent_at <= now() - make_interval(secs => a.min_interval_s))
RETURNING s.mark AS new_mark, now() AS at;

-- name: failed_since
-- Up to %(limit)s of the jobs that failed in (mark, new_mark], newest first.
SELECT id, type, fail_reason::text AS reason, left(last_error, %(error_chars)s) AS last_error
FROM jobs
WHERE queue = %(queue)s AND status = 'failed'
  AND finished_at > %(mark)s AND finished_at <= %(new_mark)s
ORDER BY id DESC LIMIT %(limit)s;

-- name: failed_count_between
SELECT count(*) AS n FROM jobs
WHERE queue = %(queue)s AND status = 'failed'
  AND finished_at > %(mark)s AND finished_at <= %(new_mark)s;

-- name: waiting_state
-- The queue's due waiting jobs (pending, or delayed and due), the age of the oldest, and the
-- live runners that serve it (a runner with no queues serves every queue).
SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs j WHERE j.queue = %(queue)s
            AND (j.status = 'pending' OR (j.status = 'delayed' AND j.run_at <= now()))
            LIMIT 10000) w) AS waiting,
       extract(epoch FROM now() - (SELECT min(coalesce(j.run_at, j.created_at)) FROM jobs j
            WHERE j.queue = %(queue)s
              AND (j.status = 'pending' OR (j.status = 'delayed' AND j.run_at <= now()))))
           AS oldest_s,
       (SELECT count(*) FROM runners r
        WHERE r.last_beat >= now() - make_interval(secs => 2 * r.beat_interval_s)
          AND (cardinality(r.queues) = 0 OR %(queue)s = ANY (r.queues))) AS runners;
