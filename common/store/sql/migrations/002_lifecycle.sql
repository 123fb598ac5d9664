-- The job lifecycle: retry policy, timeouts, idempotency, cancellation, per-attempt logs,
-- an event row for every state change, and per-queue settings (pause, retention).

CREATE TYPE fail_reason AS ENUM ('exhausted', 'non_retryable', 'timeout', 'stalled', 'cancelled');
COMMENT ON TYPE fail_reason IS
  'why a job is failed: exhausted (attempts used up), non_retryable (NonRetryableError), '
  'timeout (last attempt timed out), stalled (its runner vanished too often), '
  'cancelled (cancelled while active)';

ALTER TABLE jobs
    DROP CONSTRAINT jobs_check,
    ADD COLUMN fail_reason      fail_reason,
    ADD COLUMN backoff          jsonb   NOT NULL
        DEFAULT '{"type": "exponential", "delay_ms": 1000, "max_delay_ms": null, "jitter": 0}',
    ADD COLUMN timeout_s        double precision CHECK (timeout_s > 0),
    ADD COLUMN attempt_offset   integer NOT NULL DEFAULT 0,
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN idempotency_key  text,
    ADD COLUMN request_hash     text,
    ADD COLUMN progress         real,
    ADD COLUMN changed_by       text    NOT NULL DEFAULT 'api',
    ADD CONSTRAINT jobs_budget CHECK (attempts - attempt_offset <= max_attempts);
COMMENT ON COLUMN jobs.attempt_offset IS
  'attempts made before the latest admin retry; this budget has used attempts - attempt_offset';
COMMENT ON COLUMN jobs.changed_by IS 'who made the latest change: api, runner, janitor, reconciler';
COMMENT ON COLUMN jobs.timeout_s IS 'per-job timeout; NULL means the handler''s default';

CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_delayed_due ON jobs (run_at) WHERE status = 'delayed';
CREATE INDEX jobs_finished ON jobs (queue, status, finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

ALTER TABLE job_attempts
    DROP CONSTRAINT job_attempts_outcome_check,
    ADD CONSTRAINT job_attempts_outcome_check
        CHECK (outcome IN ('running', 'completed', 'failed', 'retried', 'stalled')),
    ADD COLUMN logs     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN progress real;

CREATE TABLE job_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_status job_status,
    to_status   job_status  NOT NULL,
    cause       text        NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- Statement-level triggers with transition tables: one INSERT per statement, however many
-- jobs it moved, so batched transitions stay batched.
CREATE FUNCTION djs_events_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, from_status, to_status, cause)
    SELECT id, NULL, status, changed_by FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION djs_events_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, from_status, to_status, cause)
    SELECT n.id, o.status, n.status, n.changed_by
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    WHERE o.status IS DISTINCT FROM n.status;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_events_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION djs_events_on_insert();
CREATE TRIGGER jobs_events_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION djs_events_on_update();

CREATE TABLE queues (
    name               text PRIMARY KEY,
    paused             boolean     NOT NULL DEFAULT false,
    remove_on_complete jsonb,
    remove_on_fail     jsonb,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN queues.remove_on_complete IS
  'retention of completed jobs: {"age_s": n, "count": n}, either or both; NULL keeps them';
