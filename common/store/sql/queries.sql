-- Every job query djs runs. Each status change is one guarded statement: it names the
-- status it expects, so a duplicate delivery or a stale runner changes 0 rows. Each also
-- sets changed_by, which the event triggers (migration 002) record as the cause.
-- `{{name}}` is replaced by the fragment block `_name` below, as written.
-- The runner's statements find their rows by id (`id = ANY(ids)`, the primary key), and test
-- the status they expect as text (`status::text = 'active'`), which no index can serve.
-- Tested as an enum it let the planner pick the index on status, trusting an estimate of a
-- few active jobs, and a bitmap scan of it visits every dead entry since the last vacuum:
-- 60,300 entries and 2,886 heap pages to complete 100 jobs (4.7 ms of a 6 ms statement), a
-- cost that grew with every job run.

-- name: _job_filter
-- The filter shared by listing and bulk operations; a NULL parameter matches everything.
(%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
AND (%(type)s::text IS NULL OR type = %(type)s::text)
AND (%(status)s::job_status IS NULL OR status = %(status)s::job_status)
AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s::timestamptz)
AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s::timestamptz)

-- name: _delete_history
-- The history of the jobs a `moved` CTE deleted: their attempts and events (no foreign keys
-- cascade them, see migration 004).
attempts AS (
    DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM moved)
), events AS (
    DELETE FROM job_events WHERE job_id IN (SELECT id FROM moved)
)

-- name: _dispatch_columns
-- What dispatch needs of a job a statement moved (common.records.Dispatch).
id, queue, priority, status::text AS status, run_at

-- name: _waited_ms
-- A first attempt's wait from the moment its job was due, in ms (GET /stats, the runner's
-- schedule lag histogram); an infinite time (written with SQL) has none.
CASE WHEN attempts = 1 AND isfinite(started_at) AND isfinite(coalesce(run_at, created_at))
     THEN (extract(epoch FROM started_at - coalesce(run_at, created_at)) * 1000)::float8 END

-- name: _attempt_written
-- An attempt's row is written once, with its outcome, by the statement that ends it (the
-- running one is the job's row: see get_attempts). A row the claim of an older djs opened
-- ('running') is completed instead of refused. A job row written by hand may lack the worker
-- or start the claim sets: the attempt is still written (NOT NULL columns), not the loop
-- stopped.
ON CONFLICT (job_id, attempt) DO UPDATE
SET outcome = excluded.outcome, finished_at = excluded.finished_at,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback, logs = excluded.logs, progress = excluded.progress,
    queue = excluded.queue, waited_ms = excluded.waited_ms, to_status = excluded.to_status

-- name: _suspect
-- A job on its last stall before failing runs alone (see recover_stalled).
stalls >= greatest(1, max_stalls - 1) AS suspect

-- name: enqueue_jobs
-- Insert a batch as pending, or delayed when run_at is in the future. A job whose
-- (queue, idempotency_key) already exists is skipped; the caller looks it up.
-- The batch is one JSON array: one C-speed json.dumps beats ten per-element array dumps.
INSERT INTO jobs (queue, type, payload, status, priority, max_attempts, backoff, timeout_s,
                  run_at, idempotency_key, request_hash, owner_key_id, changed_by)
SELECT queue, type, payload,
       CASE WHEN run_at > now() THEN 'delayed' ELSE 'pending' END::job_status,
       priority, max_attempts, backoff, timeout_s,
       CASE WHEN run_at > now() THEN run_at END, idempotency_key, request_hash, owner_key_id,
       'api'
FROM ROWS FROM (jsonb_to_recordset(%(jobs)s::jsonb)
                AS (queue text, type text, payload jsonb, priority int, max_attempts int,
                    backoff jsonb, timeout_s float8, run_at timestamptz, idempotency_key text,
                    request_hash text, owner_key_id bigint)) WITH ORDINALITY AS i
ORDER BY i.ordinality
ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *;

-- name: jobs_by_idempotency_key
SELECT * FROM jobs
WHERE (queue, idempotency_key) IN (SELECT * FROM unnest(%(queues)s::text[], %(keys)s::text[]));

-- name: get_job
-- With an owner, only that key's job (a submitter's view).
SELECT * FROM jobs
WHERE id = %(id)s AND (%(owner_key_id)s::bigint IS NULL OR owner_key_id = %(owner_key_id)s::bigint);

-- name: get_attempts
-- The newest %(limit)s attempts, oldest first: retries add attempts without end, and each may
-- hold 150 KiB of error, traceback and logs. An infinite time (written with SQL) has no
-- duration: Postgres refuses to subtract it. The attempt running now has no row yet (one is
-- written with its outcome): it is the job's own row.
SELECT * FROM (
    SELECT attempt, worker, started_at, finished_at, outcome, error_type, error_message,
           traceback, logs, progress,
           CASE WHEN isfinite(finished_at) AND isfinite(started_at)
                THEN extract(epoch FROM finished_at - started_at) * 1000 END AS duration_ms
    FROM job_attempts WHERE job_id = %(id)s
    UNION ALL
    SELECT attempts, worker, started_at, NULL, 'running', NULL, NULL, NULL, '{}', progress,
           NULL
    FROM jobs j WHERE id = %(id)s AND status = 'active' AND NOT EXISTS
        (SELECT 1 FROM job_attempts a WHERE a.job_id = j.id AND a.attempt = j.attempts)
    ORDER BY attempt DESC LIMIT %(limit)s
) newest ORDER BY attempt;

-- name: get_events
-- The newest %(limit)s events, oldest first, and how many there are in all. A move out of
-- active that the runner made has no event row: its attempt's row says it (migration 013).
SELECT at, from_status, to_status, cause, total FROM (
    SELECT at, seq, from_status, to_status, cause, count(*) OVER () AS total FROM (
        SELECT at, id AS seq, from_status::text AS from_status, to_status::text AS to_status,
               cause
        FROM job_events WHERE job_id = %(id)s
        UNION ALL
        SELECT finished_at, NULL, 'active', to_status::text, 'runner'
        FROM job_attempts WHERE job_id = %(id)s AND to_status IS NOT NULL
    ) moves
    ORDER BY at DESC, seq DESC NULLS FIRST LIMIT %(limit)s
) newest ORDER BY at, seq NULLS LAST;

-- name: queue_settings
SELECT name, paused, remove_on_complete, remove_on_fail FROM queues ORDER BY name;

-- name: set_queue_paused
INSERT INTO queues (name, paused) VALUES (%(name)s, %(paused)s)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now()
RETURNING name, paused, remove_on_complete, remove_on_fail;

-- name: set_queue_retention
INSERT INTO queues (name, remove_on_complete, remove_on_fail)
VALUES (%(name)s, %(remove_on_complete)s, %(remove_on_fail)s)
ON CONFLICT (name) DO UPDATE
SET remove_on_complete = excluded.remove_on_complete, remove_on_fail = excluded.remove_on_fail,
    updated_at = now()
RETURNING name, paused, remove_on_complete, remove_on_fail;

-- name: claim_jobs
-- pending (or due delayed) -> active for a batch of ids popped from Redis, in one round trip.
-- Ids that are not runnable any more (duplicate delivery, cancelled, already run, not yet
-- due) simply do not come back: the guard is the claim.
-- The columns come back in the order of store.ClaimedJob's fields, which is built from them.
-- The attempt's row is written with its outcome, not here (_attempt_written): an insert
-- here and an update then cost a third of the Postgres CPU of a job's life.
-- waited_ms feeds the runner's schedule lag histogram (common/metrics.py).
UPDATE jobs
SET status = 'active', attempts = attempts + 1, worker = %(worker)s, progress = NULL,
    lease_token = gen_random_uuid(),
    lease_expires_at = now() + %(lease_s)s * interval '1 second',
    started_at = now(), updated_at = now(), changed_by = 'runner'
WHERE id = ANY(%(ids)s::bigint[])
  AND (status::text = 'pending' OR (status::text = 'delayed' AND run_at <= now()))
  AND attempts - attempt_offset < max_attempts
RETURNING id, queue, type, payload, priority, attempts, max_attempts, attempt_offset,
          backoff, timeout_s, lease_token, {{waited_ms}} AS waited_ms;

-- name: complete_jobs
-- active -> completed for a batch. The lease token fences a runner whose lease has lapsed.
WITH outcome AS (
    SELECT * FROM jsonb_to_recordset(%(outcomes)s::jsonb)
        AS o(id bigint, token uuid, result jsonb, logs jsonb, progress real)
), done AS (
    UPDATE jobs j
    SET status = 'completed', result = o.result, progress = o.progress, finished_at = now(),
        lease_token = NULL, lease_expires_at = NULL, updated_at = now(), changed_by = 'runner'
    FROM outcome o
    WHERE j.id = ANY(%(ids)s::bigint[]) AND j.id = o.id AND j.status::text = 'active'
      AND j.lease_token = o.token
    RETURNING j.id, j.attempts, j.worker, j.queue, j.started_at, {{waited_ms}} AS waited_ms
), closed AS (
    INSERT INTO job_attempts (job_id, attempt, worker, queue, started_at, finished_at,
                              outcome, progress, logs, waited_ms, to_status)
    SELECT d.id, d.attempts, coalesce(d.worker, '?'), d.queue, coalesce(d.started_at, now()),
           now(), 'completed', o.progress,
           ARRAY(SELECT jsonb_array_elements_text(o.logs)), d.waited_ms, 'completed'
    FROM done d JOIN outcome o ON o.id = d.id
    {{attempt_written}}
)
SELECT id FROM done;

-- name: fail_jobs
-- active -> failed, or -> pending/delayed when the lifecycle rules grant a retry
-- (retry_in_ms NULL: no retry; 0: run again now; > 0: wait that long). A job an admin
-- asked to cancel while it ran is not retried: it fails with reason 'cancelled'. The flag
-- is read in SET, from the row as locked, not from a snapshot taken before a concurrent
-- cancel committed.
WITH outcome AS (
    SELECT * FROM jsonb_to_recordset(%(outcomes)s::jsonb)
        AS o(id bigint, token uuid, retry_in_ms bigint, reason fail_reason, error_type text,
             message text, traceback text, logs jsonb, progress real)
), before AS MATERIALIZED (
    -- A retry moves run_at: the first attempt's wait is measured from the one before.
    SELECT id, {{waited_ms}} AS waited_ms FROM jobs WHERE id = ANY(%(ids)s::bigint[])
), done AS (
    UPDATE jobs j
    SET status = CASE WHEN j.cancel_requested OR o.retry_in_ms IS NULL THEN 'failed'
                      WHEN o.retry_in_ms = 0 THEN 'pending'
                      ELSE 'delayed' END::job_status,
        run_at = CASE WHEN NOT j.cancel_requested AND o.retry_in_ms > 0
                      THEN now() + o.retry_in_ms * interval '1 millisecond' END,
        finished_at = CASE WHEN j.cancel_requested OR o.retry_in_ms IS NULL THEN now() END,
        fail_reason = CASE WHEN j.cancel_requested THEN 'cancelled'::fail_reason
                           WHEN o.retry_in_ms IS NULL THEN o.reason END,
        last_error = o.error_type || ': ' || o.message, lease_token = NULL,
        lease_expires_at = NULL, progress = o.progress, updated_at = now(), changed_by = 'runner'
    FROM outcome o
    WHERE j.id = ANY(%(ids)s::bigint[]) AND j.id = o.id AND j.status::text = 'active'
      AND j.lease_token = o.token
    RETURNING j.id, j.queue, j.priority, j.status::text AS status, j.run_at, j.attempts,
              j.type, j.fail_reason::text AS fail_reason, j.worker, j.started_at
), closed AS (
    INSERT INTO job_attempts (job_id, attempt, worker, queue, started_at, finished_at,
                              outcome, error_type, error_message, traceback, progress, logs,
                              waited_ms, to_status)
    SELECT d.id, d.attempts, coalesce(d.worker, '?'), d.queue, coalesce(d.started_at, now()), now(),
           CASE WHEN d.status = 'failed' THEN 'failed' ELSE 'retried' END,
           o.error_type, o.message, o.traceback, o.progress,
           ARRAY(SELECT jsonb_array_elements_text(o.logs)), b.waited_ms, d.status::job_status
    FROM done d JOIN outcome o ON o.id = d.id LEFT JOIN before b ON b.id = d.id
    {{attempt_written}}
)
SELECT id, queue, priority, status, run_at, type, fail_reason FROM done;

-- name: quarantine_job
-- A job a background loop could not process (its outcome refused by Postgres, a row that
-- cannot be read back): failed with reason invalid_record, its lease fenced as usual, so the
-- loop goes on. The error is kept as text for the operator, and on the attempt it ended if
-- the job was running.
WITH before AS MATERIALIZED (SELECT status FROM jobs WHERE id = %(id)s), moved AS (
    UPDATE jobs
    SET status = 'failed', fail_reason = 'invalid_record', last_error = %(error)s,
        finished_at = now(), lease_token = NULL, lease_expires_at = NULL, updated_at = now(),
        changed_by = 'runner'
    WHERE id = %(id)s AND status NOT IN ('completed', 'failed', 'cancelled')
      AND (%(token)s::uuid IS NULL OR lease_token = %(token)s::uuid)
    RETURNING id, attempts, worker, queue, started_at, {{waited_ms}} AS waited_ms
), closed AS (
    INSERT INTO job_attempts (job_id, attempt, worker, queue, started_at, finished_at,
                              outcome, error_type, error_message, waited_ms, to_status)
    SELECT id, attempts, coalesce(worker, '?'), queue, started_at, now(), 'failed',
           'InvalidRecord', %(error)s, waited_ms, 'failed'
    FROM moved WHERE (SELECT status FROM before) = 'active' AND started_at IS NOT NULL
    {{attempt_written}}
)
SELECT id FROM moved;

-- name: renew_leases
-- The heartbeat: extend the leases this runner still holds; ids missing from the result were
-- lost (recovered as stalled, cancelled, removed) and their outcomes will be refused.
UPDATE jobs j SET lease_expires_at = now() + %(lease_s)s * interval '1 second'
FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS l(id, token)
WHERE j.id = ANY(%(ids)s::bigint[]) AND j.id = l.id AND j.status::text = 'active'
  AND j.lease_token = l.token
RETURNING j.id, j.cancel_requested;

-- name: release_jobs
-- Graceful drain: active -> pending for jobs still running at the end of the grace period, so
-- another runner takes them at once. The interrupted run does not count against the budget.
-- A job an admin asked to cancel is not given back to run again: it fails with reason
-- 'cancelled', as fail_jobs would have failed it (the flag read from the row as locked).
WITH released AS (
    UPDATE jobs j
    SET status = CASE WHEN j.cancel_requested THEN 'failed' ELSE 'pending' END::job_status,
        attempt_offset = j.attempt_offset + CASE WHEN j.cancel_requested THEN 0 ELSE 1 END,
        fail_reason = CASE WHEN j.cancel_requested THEN 'cancelled'::fail_reason END,
        finished_at = CASE WHEN j.cancel_requested THEN now() END,
        last_error = CASE WHEN j.cancel_requested
                          THEN 'Cancelled: the runner shut down before the handler stopped'
                          ELSE j.last_error END,
        lease_token = NULL, lease_expires_at = NULL, updated_at = now(), changed_by = 'runner'
    FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[]) AS l(id, token)
    WHERE j.id = ANY(%(ids)s::bigint[]) AND j.id = l.id AND j.status::text = 'active'
      AND j.lease_token = l.token
    RETURNING j.id, j.queue, j.priority, j.status::text AS status, j.run_at, j.attempts,
              j.worker, j.started_at, {{waited_ms}} AS waited_ms
), closed AS (
    INSERT INTO job_attempts (job_id, attempt, worker, queue, started_at, finished_at,
                              outcome, error_type, error_message, waited_ms, to_status)
    SELECT r.id, r.attempts, coalesce(r.worker, '?'), r.queue, coalesce(r.started_at, now()), now(),
           CASE WHEN r.status = 'failed' THEN 'failed' ELSE 'released' END,
           CASE WHEN r.status = 'failed' THEN 'Cancelled' ELSE 'Released' END,
           CASE WHEN r.status = 'failed'
                THEN 'cancelled; the runner shut down before the handler stopped'
                ELSE 'the runner shut down before the attempt finished' END,
           r.waited_ms, r.status::job_status
    FROM released r
    {{attempt_written}}
)
SELECT id, queue, priority, status, run_at FROM released;

-- name: recover_stalled
-- Janitor: an active job whose lease expired (its runner died, froze or lost its network)
-- goes back to pending, or to failed with reason 'stalled' once it has stalled max_stalls
-- times or has no attempt left. Time is Postgres time, never a runner's clock.
-- One stall is usually a runner's own death (a deploy, the OOM killer); a job on its last
-- stall before failing is a suspect: it runs alone, so a poison pill cannot take the jobs
-- claimed with it down to 'stalled' too.
WITH expired AS (
    SELECT id FROM jobs WHERE status = 'active' AND lease_expires_at < now()
    ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE jobs j
    SET stalls = j.stalls + 1,
        status = CASE WHEN j.stalls + 1 >= j.max_stalls
                        OR j.attempts - j.attempt_offset >= j.max_attempts
                      THEN 'failed' ELSE 'pending' END::job_status,
        fail_reason = CASE WHEN j.stalls + 1 >= j.max_stalls
                             OR j.attempts - j.attempt_offset >= j.max_attempts
                           THEN 'stalled'::fail_reason END,
        finished_at = CASE WHEN j.stalls + 1 >= j.max_stalls
                             OR j.attempts - j.attempt_offset >= j.max_attempts
                           THEN now() END,
        last_error = 'Stalled: the lease of runner ' || coalesce(j.worker, '?') || ' expired',
        lease_token = NULL, lease_expires_at = NULL, updated_at = now(), changed_by = 'janitor'
    FROM expired e
    WHERE j.id = ANY(ARRAY(SELECT id FROM expired)) AND j.id = e.id
      AND j.status::text = 'active'
    RETURNING j.id, j.queue, j.priority, j.status::text AS status, j.run_at, j.attempts,
              {{suspect}}, j.type, j.fail_reason::text AS fail_reason, j.worker, j.started_at,
              {{waited_ms}} AS waited_ms
), closed AS (
    INSERT INTO job_attempts (job_id, attempt, worker, queue, started_at, finished_at,
                              outcome, error_type, error_message, waited_ms)
    SELECT m.id, m.attempts, coalesce(m.worker, '?'), m.queue, coalesce(m.started_at, now()),
           now(), 'stalled',
           'Stalled', 'the runner stopped renewing its lease', m.waited_ms
    FROM moved m
    {{attempt_written}}
)
SELECT id, queue, priority, status, run_at, suspect, type, fail_reason FROM moved;

-- name: save_progress
UPDATE jobs j SET progress = p.progress
FROM unnest(%(ids)s::bigint[], %(progress)s::real[]) AS p(id, progress)
WHERE j.id = ANY(%(ids)s::bigint[]) AND j.id = p.id AND j.status::text = 'active'
  AND j.progress IS DISTINCT FROM p.progress;

-- Admin verbs. Each verb is one move (`_<verb>`) from the states it applies to
-- (`_<verb>able`), written once and used two ways: by filter (`<verb>_jobs`, which skips rows
-- locked by a runner for the moment) and for one job (`<verb>_job`, which waits for the row's
-- lock and answers what it found, so a refusal names the state that caused it).
-- A move's guard reads `target.found`, the status of the row as locked: a statement's own
-- snapshot may predate a change that committed while it waited for the lock.

-- name: _one_job
-- The one job a single-job verb names, locked, with its current status.
target AS (SELECT id AS target_id, status AS found FROM jobs WHERE id = %(id)s FOR UPDATE)

-- name: _one_outcome
-- No row: no such job. A row with id NULL: the verb did not apply to the status `found`.
SELECT target.found::text AS found, moved.* FROM target LEFT JOIN moved ON true

-- name: _retryable
IN ('failed', 'cancelled', 'completed')

-- name: _retry
-- Admin retry: failed, cancelled or completed -> pending, with a fresh attempt budget.
-- Earlier attempts stay as history.
UPDATE jobs
SET status = 'pending', attempt_offset = attempts, fail_reason = NULL, cancel_requested = false,
    stalls = 0,
    run_at = NULL, finished_at = NULL, result = NULL, updated_at = now(), changed_by = 'api'
FROM target WHERE jobs.id = target.target_id AND target.found {{retryable}}
RETURNING {{dispatch_columns}}

-- name: retry_jobs
WITH target AS (
    SELECT id AS target_id, status AS found FROM jobs
    WHERE ({{job_filter}}) AND status {{retryable}}
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS ({{retry}})
SELECT * FROM moved;

-- name: retry_job
WITH {{one_job}}, moved AS ({{retry}})
{{one_outcome}};

-- name: redrive_jobs
-- Admin redrive: retry failed jobs in id order after a cursor, so that one walk takes each
-- job at most once, even one that fails again while the walk goes on.
WITH target AS (
    SELECT id AS target_id, status AS found FROM jobs
    WHERE ({{job_filter}}) AND status = 'failed' AND id > %(after_id)s
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS ({{retry}})
SELECT * FROM moved ORDER BY id;

-- name: count_redrivable
-- How many failed jobs a redrive walk has still ahead of its cursor.
SELECT count(*) AS n FROM jobs
WHERE ({{job_filter}}) AND status = 'failed' AND id > %(after_id)s;

-- name: _promotable
IN ('delayed')

-- name: _promote
-- Admin promote: delayed -> pending now.
UPDATE jobs SET status = 'pending', run_at = NULL, updated_at = now(), changed_by = 'api'
FROM target WHERE jobs.id = target.target_id AND target.found {{promotable}}
RETURNING {{dispatch_columns}}

-- name: promote_jobs
WITH target AS (
    SELECT id AS target_id, status AS found FROM jobs
    WHERE ({{job_filter}}) AND status {{promotable}}
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS ({{promote}})
SELECT * FROM moved;

-- name: promote_job
WITH {{one_job}}, moved AS ({{promote}})
{{one_outcome}};

-- name: _cancellable
IN ('pending', 'delayed')

-- name: _cancel
-- Admin cancel: pending or delayed -> cancelled.
UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now(), changed_by = 'api'
FROM target WHERE jobs.id = target.target_id AND target.found {{cancellable}}
RETURNING id, queue

-- name: _request_cancel
-- Admin cancel of an active job: its runner sees the flag and the handler can stop.
UPDATE jobs SET cancel_requested = true, updated_at = now(), changed_by = 'api'
FROM target WHERE jobs.id = target.target_id AND target.found = 'active'
RETURNING id, queue

-- name: cancel_jobs
WITH target AS (
    SELECT id AS target_id, status AS found FROM jobs
    WHERE ({{job_filter}}) AND status {{cancellable}}
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS ({{cancel}})
SELECT * FROM moved;

-- name: request_cancel
-- Active jobs are not skipped while a heartbeat holds their lock: the request waits for it.
WITH target AS (
    SELECT id AS target_id, status AS found FROM jobs
    WHERE ({{job_filter}}) AND status = 'active'
    ORDER BY id LIMIT %(limit)s FOR UPDATE
), moved AS ({{request_cancel}})
SELECT * FROM moved;

-- name: cancel_job
-- One job: cancelled if waiting, flagged if active (at most one of the two moves applies).
WITH {{one_job}}, cancelled AS ({{cancel}}), requested AS ({{request_cancel}})
SELECT target.found::text AS found, cancelled.id AS cancelled, requested.id AS requested,
       coalesce(cancelled.queue, requested.queue) AS queue
FROM target LEFT JOIN cancelled ON true LEFT JOIN requested ON true;

-- name: _removable
IN ('pending', 'delayed', 'completed', 'failed', 'cancelled')

-- name: _remove
-- Admin remove: a job and its history (see _delete_history). Never an active job.
DELETE FROM jobs USING target WHERE jobs.id = target.target_id AND target.found {{removable}}
RETURNING id, queue

-- name: remove_jobs
WITH target AS (
    SELECT id AS target_id, status AS found FROM jobs
    WHERE ({{job_filter}}) AND status {{removable}}
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS ({{remove}}), {{delete_history}}
SELECT id, queue FROM moved;

-- name: remove_job
WITH {{one_job}}, moved AS ({{remove}}), {{delete_history}}
{{one_outcome}};

-- name: clean_older_than
-- Remove one queue's finished jobs of one status older than age_s, with their history, a
-- bounded batch at a time.
WITH moved AS (
    DELETE FROM jobs
    WHERE id IN (SELECT id FROM jobs
                 WHERE queue = %(queue)s AND status = %(status)s::job_status
                   AND finished_at < now() - %(age_s)s * interval '1 second'
                 ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    RETURNING id
), {{delete_history}}
SELECT id FROM moved;

-- name: clean_beyond_newest
-- Remove one queue's finished jobs of one status beyond the newest `keep`, with their
-- history, a batch at a time.
WITH moved AS (
    DELETE FROM jobs
    WHERE id IN (SELECT id FROM jobs
                 WHERE queue = %(queue)s AND status = %(status)s::job_status
                 ORDER BY finished_at DESC, id DESC OFFSET %(keep)s LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
    RETURNING id
), {{delete_history}}
SELECT id FROM moved;

-- name: promote_due
-- Janitor: delayed jobs due for over a second -> pending, so the states tell the truth while
-- they wait for a free runner. Redis promotes them on its own clock meanwhile; the second's
-- grace keeps the janitor's row locks out of the runners' way at the instant jobs fall due.
UPDATE jobs SET status = 'pending', updated_at = now(), changed_by = 'janitor'
WHERE id IN (SELECT id FROM jobs WHERE status = 'delayed' AND run_at <= now() - interval '1 s'
             ORDER BY run_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING {{dispatch_columns}};

-- name: undispatched_jobs
-- The next `limit` pending or delayed jobs after a cursor, in id order, each marked stale when
-- untouched for a while: a candidate for a fresh push to Redis after a lost push or a Redis
-- flush. The scan is bounded by `limit` whatever the jobs' ages, and each status is read
-- from its own range of jobs_status_id, never by walking finished jobs.
SELECT {{dispatch_columns}}, {{suspect}},
       updated_at < now() - %(older_than_s)s * interval '1 second' AS stale
FROM ((SELECT * FROM jobs WHERE status = 'pending' AND id > %(after_id)s
       ORDER BY id LIMIT %(limit)s)
      UNION ALL
      (SELECT * FROM jobs WHERE status = 'delayed' AND id > %(after_id)s
       ORDER BY id LIMIT %(limit)s)) AS next_jobs
ORDER BY id
LIMIT %(limit)s;

-- name: waiting_jobs
-- Some queues' pending and delayed jobs, oldest first: what a burst runner checks Redis
-- against before it exits.
SELECT {{dispatch_columns}}, {{suspect}}
FROM jobs WHERE queue = ANY(%(queues)s::text[]) AND status IN ('pending', 'delayed')
ORDER BY id LIMIT %(limit)s;

-- name: queue_names
-- Every queue with jobs or settings: a loose index scan of jobs_queue_status_id, one probe
-- per queue however many jobs it holds, plus the queues table.
WITH RECURSIVE q AS (
    (SELECT queue FROM jobs ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM jobs j WHERE j.queue > q.queue ORDER BY j.queue LIMIT 1)
    FROM q WHERE q.queue IS NOT NULL
)
SELECT queue AS name FROM q WHERE queue IS NOT NULL
UNION
SELECT name FROM queues;

-- name: try_lock
-- Only one reconciler (or janitor) works at a time; the lock ends with the transaction.
SELECT pg_try_advisory_xact_lock(%(key)s) AS locked;

-- name: quarantine_unreadable
-- Janitor: a delayed job whose run_at lies outside the years 1 to 9999 in UTC, which Python
-- cannot hold (a row from before the bounds, or written with SQL: Postgres allows 4713 BC to
-- 294276 AD and infinity), loads clamped (common/store/loaders.py) but would never run as
-- asked: failed, invalid_record, with the stored time in last_error. Two range scans of the
-- jobs_delayed_due index (an OR would scan all of it), so two probes when all is well. No
-- runner claims these jobs, so waiting for a row lock (an admin's promote) costs nothing.
WITH unreadable AS (
    (SELECT id FROM jobs WHERE status = 'delayed' AND run_at >= '10000-01-01 00:00:00+00'
     ORDER BY run_at LIMIT %(limit)s)
    UNION ALL
    (SELECT id FROM jobs WHERE status = 'delayed' AND run_at < '0001-01-01 00:00:00+00'
     ORDER BY run_at LIMIT %(limit)s)
)
UPDATE jobs j
SET status = 'failed', fail_reason = 'invalid_record',
    last_error = 'InvalidRecord: run_at is ' || j.run_at::text
                 || ', outside the years 1 to 9999 (UTC) that djs can read',
    finished_at = now(), updated_at = now(), changed_by = 'janitor'
FROM unreadable u
WHERE j.id = u.id AND j.status = 'delayed'
RETURNING j.id, j.queue;

-- GET /jobs: a page in one of three orders (newest, oldest, priority), filtered by the job
-- filter and the search parameters, bounded by rows and by bytes. Keyset pagination in every
-- order (no OFFSET): the cursor names the last job of the previous page.
-- Filters with an index (queue, status, payload @>, last_error ILIKE) narrow `scanned`; the
-- text of the payload has none (an index on every payload's text would cost each write more
-- than the search is worth), so with `text` the page is what matches among the next `scan`
-- jobs of `scanned` in the page's order, and the caller goes on from the last job scanned
-- (scan_end_*). Without `text`, `scan` is the page's limit.
-- A page takes a row while the rows before it hold fewer than max_bytes (its payload,
-- result and error as text, plus an allowance for the other fields), so it holds at least
-- one row and at most max_bytes plus one row: bytes_before + shown_bytes >= max_bytes tells
-- the caller the budget ran out.
-- These run unprepared (a custom plan each time): the `IS NULL OR` of an absent
-- parameter folds away and the planner sees only the filters given.

-- name: _list_where
({{job_filter}})
AND (%(owner_key_id)s::bigint IS NULL OR owner_key_id = %(owner_key_id)s::bigint)
AND (%(payload)s::jsonb IS NULL OR payload @> %(payload)s::jsonb)
AND (%(error)s::text IS NULL OR last_error ILIKE %(error)s::text)

-- name: _text_match
(%(text)s::text IS NULL OR payload::text ILIKE %(text)s::text)

-- name: _shown_bytes
octet_length(payload::text) + coalesce(octet_length(result::text), 0)
+ coalesce(octet_length(last_error), 0) + 600 AS shown_bytes

-- name: _newest_scanned
SELECT * FROM jobs
WHERE {{list_where}} AND (%(cursor)s::bigint IS NULL OR id < %(cursor)s::bigint)
ORDER BY id DESC LIMIT %(scan)s

-- name: _oldest_scanned
SELECT * FROM jobs
WHERE {{list_where}} AND id > coalesce(%(cursor)s::bigint, 0)
ORDER BY id LIMIT %(scan)s

-- name: _priority_scanned
-- Highest priority first, then oldest, in three ranges each read along an index in order
-- (an OR of them would scan from the start): the rest of the cursor's priority, the lower
-- priorities above 0 (jobs_prioritized, which holds only those: most jobs keep the default
-- 0 and cost it nothing), then the priority-0 jobs by id (jobs_queue_status_id, skipping
-- the prioritized ones between them).
SELECT * FROM (
    (SELECT * FROM jobs
     WHERE {{list_where}} AND priority = %(after_priority)s AND id > %(after_id)s
     ORDER BY id LIMIT %(scan)s)
    UNION ALL
    (SELECT * FROM jobs
     WHERE {{list_where}} AND priority > 0 AND priority < %(after_priority)s
     ORDER BY priority DESC, id LIMIT %(scan)s)
    UNION ALL
    (SELECT * FROM jobs
     WHERE {{list_where}} AND priority = 0 AND %(after_priority)s > 0
     ORDER BY id LIMIT %(scan)s)
) three_parts ORDER BY priority DESC, id LIMIT %(scan)s

-- name: list_newest
WITH page AS (
    SELECT *, {{shown_bytes}} FROM ({{newest_scanned}}) scanned
    WHERE {{text_match}} ORDER BY id DESC LIMIT %(limit)s
), counted AS (
    SELECT *, sum(shown_bytes) OVER (ORDER BY id DESC) - shown_bytes AS bytes_before FROM page
)
SELECT * FROM counted WHERE bytes_before < %(max_bytes)s ORDER BY id DESC;

-- name: list_oldest
WITH page AS (
    SELECT *, {{shown_bytes}} FROM ({{oldest_scanned}}) scanned
    WHERE {{text_match}} ORDER BY id LIMIT %(limit)s
), counted AS (
    SELECT *, sum(shown_bytes) OVER (ORDER BY id) - shown_bytes AS bytes_before FROM page
)
SELECT * FROM counted WHERE bytes_before < %(max_bytes)s ORDER BY id;

-- name: list_priority
WITH page AS (
    SELECT *, {{shown_bytes}} FROM ({{priority_scanned}}) scanned
    WHERE {{text_match}} ORDER BY priority DESC, id LIMIT %(limit)s
), counted AS (
    SELECT *, sum(shown_bytes) OVER (ORDER BY priority DESC, id) - shown_bytes AS bytes_before
    FROM page
)
SELECT * FROM counted WHERE bytes_before < %(max_bytes)s ORDER BY priority DESC, id;

-- name: scan_end_newest
-- The last job a text search scanned (the cursor to go on from), and how many it scanned.
SELECT id, priority, count(*) OVER () AS scanned FROM ({{newest_scanned}}) s
ORDER BY id LIMIT 1;

-- name: scan_end_oldest
SELECT id, priority, count(*) OVER () AS scanned FROM ({{oldest_scanned}}) s
ORDER BY id DESC LIMIT 1;

-- name: scan_end_priority
SELECT id, priority, count(*) OVER () AS scanned FROM ({{priority_scanned}}) s
ORDER BY priority, id DESC LIMIT 1;
