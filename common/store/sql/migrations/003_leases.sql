-- Crash safety: every claim takes a lease (a token and a deadline) that the runner's heartbeat
-- renews. A completion carrying a stale token changes nothing; an expired lease is a stall.

ALTER TABLE jobs
    ADD COLUMN lease_token      uuid,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN stalls           integer NOT NULL DEFAULT 0,
    ADD COLUMN max_stalls       integer NOT NULL DEFAULT 3 CHECK (max_stalls >= 1);
COMMENT ON COLUMN jobs.lease_token IS 'fences the runner that holds an active job; NULL otherwise';
COMMENT ON COLUMN jobs.stalls IS 'times a runner vanished with this job; at max_stalls it fails';

CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE status = 'active';

ALTER TABLE job_attempts
    DROP CONSTRAINT job_attempts_outcome_check,
    ADD CONSTRAINT job_attempts_outcome_check
        CHECK (outcome IN ('running', 'completed', 'failed', 'retried', 'stalled', 'released'));
