-- Every job query djs runs. Each status change is one guarded statement: it names the
-- status it expects, so a duplicate delivery or a stale runner changes 0 rows.

-- name: enqueue_job
-- Insert a job as pending (or delayed when run_at is in the future).
INSERT INTO jobs (queue, type, payload, status, priority, max_attempts, run_at)
VALUES (%(queue)s, %(type)s, %(payload)s,
        CASE WHEN %(run_at)s::timestamptz > now() THEN 'delayed' ELSE 'pending' END::job_status,
        %(priority)s, %(max_attempts)s, %(run_at)s)
RETURNING *;

-- name: get_job
SELECT * FROM jobs WHERE id = %(id)s;

-- name: get_attempts
SELECT attempt, worker, started_at, finished_at, outcome, error_type, error_message, traceback,
       extract(epoch FROM finished_at - started_at) * 1000 AS duration_ms
FROM job_attempts WHERE job_id = %(id)s ORDER BY attempt;

-- name: list_jobs
-- Keyset pagination, newest first: the cursor is the last id of the previous page.
SELECT * FROM jobs
WHERE (%(status)s::job_status IS NULL OR status = %(status)s::job_status)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(type)s::text IS NULL OR type = %(type)s::text)
  AND (%(cursor)s::bigint IS NULL OR id < %(cursor)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: queue_counts
SELECT queue, status::text AS status, count(*) AS n FROM jobs GROUP BY queue, status;

-- name: claim_jobs
-- pending (or due delayed) -> active for a batch of ids popped from Redis, in one round trip.
-- Ids that are not runnable any more (duplicate delivery, cancelled, already run, not yet
-- due) simply do not come back: the guard is the claim.
WITH claimed AS (
    UPDATE jobs
    SET status = 'active', attempts = attempts + 1, worker = %(worker)s,
        started_at = now(), updated_at = now()
    WHERE id = ANY(%(ids)s::bigint[])
      AND (status = 'pending' OR (status = 'delayed' AND run_at <= now()))
    RETURNING id, queue, type, payload, priority, attempts, max_attempts
), opened AS (
    INSERT INTO job_attempts (job_id, attempt, worker)
    SELECT id, attempts, %(worker)s FROM claimed
)
SELECT * FROM claimed;

-- name: complete_jobs
-- active -> completed for a batch. The attempt number fences a runner whose claim is stale.
WITH outcome AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(results)s::jsonb[])
        AS o(id, attempt, result)
), done AS (
    UPDATE jobs j
    SET status = 'completed', result = o.result, finished_at = now(), updated_at = now()
    FROM outcome o
    WHERE j.id = o.id AND j.status = 'active' AND j.attempts = o.attempt
    RETURNING j.id, j.attempts
), closed AS (
    UPDATE job_attempts a SET outcome = 'completed', finished_at = now()
    FROM done d WHERE a.job_id = d.id AND a.attempt = d.attempts
)
SELECT id FROM done;

-- name: fail_jobs
-- active -> failed, or -> pending/delayed when the lifecycle rules grant a retry
-- (retry_in_ms NULL: no retry; 0: run again now; > 0: wait that long).
WITH outcome AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(retry_in_ms)s::bigint[],
                         %(error_types)s::text[], %(messages)s::text[], %(tracebacks)s::text[])
        AS o(id, attempt, retry_in_ms, error_type, message, traceback)
), done AS (
    UPDATE jobs j
    SET status = CASE WHEN o.retry_in_ms IS NULL THEN 'failed'
                      WHEN o.retry_in_ms = 0 THEN 'pending'
                      ELSE 'delayed' END::job_status,
        run_at = CASE WHEN o.retry_in_ms > 0
                      THEN now() + o.retry_in_ms * interval '1 millisecond' END,
        finished_at = CASE WHEN o.retry_in_ms IS NULL THEN now() END,
        last_error = o.error_type || ': ' || o.message,
        updated_at = now()
    FROM outcome o
    WHERE j.id = o.id AND j.status = 'active' AND j.attempts = o.attempt
    RETURNING j.id, j.queue, j.priority, j.status::text AS status, j.run_at, j.attempts
), closed AS (
    UPDATE job_attempts a
    SET outcome = CASE WHEN d.status = 'failed' THEN 'failed' ELSE 'retried' END,
        finished_at = now(), error_type = o.error_type, error_message = o.message,
        traceback = o.traceback
    FROM done d JOIN outcome o ON o.id = d.id
    WHERE a.job_id = d.id AND a.attempt = d.attempts
)
SELECT id, queue, priority, status, run_at FROM done;

-- name: undispatched_jobs
-- Pending jobs, and delayed jobs, untouched for a while: candidates for a fresh push to
-- Redis after a lost push or a Redis flush. Pushing is idempotent, so overlap is harmless.
SELECT id, queue, priority, status::text AS status, run_at FROM jobs
WHERE status IN ('pending', 'delayed')
  AND updated_at < now() - %(older_than_s)s * interval '1 second'
  AND id > %(after_id)s
ORDER BY id
LIMIT %(limit)s;

-- name: try_reconcile_lock
-- Only one reconciler works at a time; the lock ends with the transaction.
SELECT pg_try_advisory_xact_lock(72450002) AS locked;
