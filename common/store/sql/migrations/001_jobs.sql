-- The system of record: one row per job, one row per attempt.

CREATE TYPE job_status AS ENUM ('pending', 'delayed', 'active', 'completed', 'failed', 'cancelled');
COMMENT ON TYPE job_status IS
  'pending: waiting in Redis for a runner; delayed: waiting for run_at; active: claimed by a runner; '
  'completed: handler returned; failed: attempts exhausted or non-retryable (the dead letter); '
  'cancelled: stopped by an admin before it finished';

CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text        NOT NULL,
    type          text        NOT NULL,
    payload       jsonb       NOT NULL,
    status        job_status  NOT NULL,
    priority      integer     NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 1000),
    attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at        timestamptz,
    worker        text,
    result        jsonb,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    CHECK (attempts <= max_attempts)
);
COMMENT ON COLUMN jobs.attempts IS 'attempts started so far; the guard that fences a stale completion';
COMMENT ON COLUMN jobs.run_at IS 'when a delayed job becomes pending';

-- Listing is keyset-paginated newest first, filtered by status, queue and type.
CREATE INDEX jobs_status_id ON jobs (status, id DESC);
CREATE INDEX jobs_queue_status_id ON jobs (queue, status, id DESC);
CREATE INDEX jobs_type_id ON jobs (type, id DESC);

CREATE TABLE job_attempts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id         bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt        integer     NOT NULL,
    worker         text        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    outcome        text        NOT NULL DEFAULT 'running'
                   CHECK (outcome IN ('running', 'completed', 'failed', 'retried')),
    error_type     text,
    error_message  text,
    traceback      text,
    UNIQUE (job_id, attempt)
);
