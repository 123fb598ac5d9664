-- GET /stats: outcomes per minute and latency percentiles over a bounded sample of attempts
-- (each queue's oldest waiting job comes from overview.sql).

-- name: outcomes_per_minute
-- Completed and failed per queue and minute since %(since)s: folded minutes plus the deltas
-- not folded yet (one snapshot, so a fold in between neither drops nor doubles a job).
WITH every AS (
    SELECT queue, minute, completed, failed FROM job_outcomes
    WHERE minute >= %(since)s AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    UNION ALL
    SELECT queue, minute, coalesce(sum(n) FILTER (WHERE status = 'completed'), 0),
           coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)
    FROM job_count_deltas
    WHERE minute >= %(since)s AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
    GROUP BY 1, 2
)
SELECT queue, minute, sum(completed)::bigint AS completed, sum(failed)::bigint AS failed
FROM every GROUP BY 1, 2;

-- name: attempt_latencies
-- Wait and run percentiles (ms) per queue over the newest %(sample)s attempts (a backward
-- scan of the primary key, bounded whatever the table holds), of which those of the last
-- %(window_s)s seconds count: wait for first attempts started in the window (waited_ms,
-- written with the attempt), run for attempts that finished in it.
WITH sample AS (
    SELECT queue, started_at, finished_at, outcome, waited_ms FROM job_attempts
    ORDER BY id DESC LIMIT %(sample)s
), recent AS (
    SELECT queue,
           CASE WHEN started_at >= now() - %(window_s)s * interval '1 second'
                THEN waited_ms END AS wait_ms,
           CASE WHEN outcome IN ('completed', 'failed', 'retried') AND isfinite(finished_at)
                     AND isfinite(started_at)
                     AND finished_at >= now() - %(window_s)s * interval '1 second'
                THEN extract(epoch FROM finished_at - started_at) * 1000 END AS run_ms
    FROM sample
    WHERE queue IS NOT NULL AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
)
SELECT queue,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY wait_ms) AS wait,
       count(wait_ms) AS wait_samples,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY run_ms) AS run,
       count(run_ms) AS run_samples
FROM recent GROUP BY queue;
