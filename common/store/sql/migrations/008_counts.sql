-- Exact counts per queue, status and owner in O(1) of the number of jobs (issue 13), and the
-- per-minute outcomes and attempt samples GET /stats reads.
--
-- Writers never touch a shared counter row (that would serialise every submission and
-- outcome on one row lock): the statement-level triggers of migration 002, plus one for
-- DELETE and one for TRUNCATE, append each statement's net change, aggregated, to the
-- insert-only job_count_deltas. The janitor folds the deltas into job_counts about once a
-- second (fold_job_counts in counts.sql: DELETE ... RETURNING, sum, upsert, one transaction).
-- A read sums job_counts and the deltas not folded yet in one statement, one snapshot: exact
-- at every moment, whether a fold ran or not.

CREATE TABLE job_counts (
    queue        text       NOT NULL,
    status       job_status NOT NULL,
    owner_key_id bigint,
    n            bigint     NOT NULL,
    UNIQUE NULLS NOT DISTINCT (queue, status, owner_key_id)
);
COMMENT ON TABLE job_counts IS
  'jobs per (queue, status, owner) as of the last fold; add job_count_deltas for the exact count';

CREATE TABLE job_count_deltas (
    queue        text       NOT NULL,
    status       job_status NOT NULL,
    owner_key_id bigint,
    minute       timestamptz,
    n            bigint     NOT NULL
);
COMMENT ON TABLE job_count_deltas IS
  'net change of jobs per (queue, status, owner) of each statement since the last fold; insert-only';
COMMENT ON COLUMN job_count_deltas.minute IS
  'for jobs entering completed or failed: the minute they did (feeds job_outcomes); else NULL';
-- Rows live about a second; autovacuum must keep up with a table that churns that fast.
ALTER TABLE job_count_deltas SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

CREATE TABLE job_outcomes (
    queue     text        NOT NULL,
    minute    timestamptz NOT NULL,
    completed bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, minute)
);
COMMENT ON TABLE job_outcomes IS
  'jobs that entered completed or failed, per queue and minute (folded deltas); kept a day';

-- The change of one statement, aggregated: one INSERT per statement however many rows moved.
-- A job counts -1 in the (queue, status, owner) it left and +1 in the one it entered.
CREATE OR REPLACE FUNCTION djs_events_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, from_status, to_status, cause)
    SELECT id, NULL, status, changed_by FROM new_rows;
    INSERT INTO job_count_deltas (queue, status, owner_key_id, minute, n)
    SELECT queue, status, owner_key_id,
           CASE WHEN status IN ('completed', 'failed')
                THEN date_trunc('minute', least(coalesce(finished_at, now()), now())) END,
           count(*)
    FROM new_rows GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION djs_events_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        SELECT n.id, o.status AS old_status, n.status, n.changed_by,
               o.queue AS old_queue, n.queue, o.owner_key_id AS old_owner, n.owner_key_id,
               n.finished_at
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (o.status, o.queue, o.owner_key_id) IS DISTINCT FROM
              (n.status, n.queue, n.owner_key_id)
    ), events AS (
        INSERT INTO job_events (job_id, from_status, to_status, cause)
        SELECT id, old_status, status, changed_by FROM moved
        WHERE old_status IS DISTINCT FROM status
    )
    -- Every row of `moved` left one (queue, status, owner) and entered another: two small
    -- aggregates (netting both sides in one aggregate measured twice the added cost).
    INSERT INTO job_count_deltas (queue, status, owner_key_id, minute, n)
    SELECT old_queue, old_status, old_owner, NULL, -count(*) FROM moved GROUP BY 1, 2, 3
    UNION ALL
    SELECT queue, status, owner_key_id,
           CASE WHEN status IN ('completed', 'failed')
                THEN date_trunc('minute', least(coalesce(finished_at, now()), now())) END,
           count(*)
    FROM moved GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE FUNCTION djs_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, status, owner_key_id, minute, n)
    SELECT queue, status, owner_key_id, NULL, -count(*) FROM old_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

-- TRUNCATE (the bench and tests empty jobs between runs) skips row triggers: start from zero.
CREATE FUNCTION djs_counts_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    DELETE FROM job_count_deltas;
    RETURN NULL;
END $$;

-- Creating a trigger locks jobs against writes until this migration commits, so the backfill
-- below counts exactly the rows no trigger saw.
CREATE TRIGGER jobs_counts_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION djs_counts_on_delete();
CREATE TRIGGER jobs_counts_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION djs_counts_on_truncate();

INSERT INTO job_counts (queue, status, owner_key_id, n)
SELECT queue, status, owner_key_id, count(*) FROM jobs GROUP BY 1, 2, 3;

INSERT INTO job_outcomes (queue, minute, completed, failed)
SELECT queue, date_trunc('minute', finished_at),
       count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
FROM jobs
WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '1 day'
  AND finished_at <= now()
GROUP BY 1, 2;

-- GET /stats samples the newest attempts by id (the primary key, no new index): each attempt
-- carries its queue and, for a job's first attempt, how long it waited from the moment it was
-- due, both written by the claim that opens it.
ALTER TABLE job_attempts
    ADD COLUMN queue     text,
    ADD COLUMN waited_ms double precision;
COMMENT ON COLUMN job_attempts.waited_ms IS
  'first attempts: started_at - coalesce(run_at, created_at) of the job, in ms; else NULL';

-- GET /jobs's search and sort on a large table (measured on 1,000,000 jobs; the write costs
-- are Postgres CPU per job, insert + claim + complete, in the README's "Search at scale"):
-- payload @> fragment: a rare fragment was a full scan (786 ms), 3 ms with this index.
-- jsonb_path_ops: one hashed entry per leaf value, the smallest GIN for @>; fastupdate
-- (the default) queues new entries in a pending list merged in bulk.
CREATE INDEX jobs_payload ON jobs USING gin (payload jsonb_path_ops);

-- last_error ILIKE '%text%': 180-400 ms as a scan, 2-8 ms with trigrams. Partial: jobs that
-- never failed (most of them) cost nothing. pg_trgm ships with PostgreSQL (contrib: in the
-- Docker image and the embedded server) and is a trusted extension: the database's owner may
-- create it. Where it is missing, error search still works, by a scan.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX jobs_last_error_trgm ON jobs USING gin (last_error gin_trgm_ops)
            WHERE last_error IS NOT NULL;
    END IF;
END $$;

-- sort=priority within a state tab: highest priority first, then oldest (704 ms for a tab of
-- 140,000 completed jobs as a sort, 3 ms along the indexes). Only jobs with a priority above
-- the default 0 are in it (the priority-0 jobs come last, by id, from jobs_queue_status_id):
-- an index of every job cost each insert and transition an entry more (+6-9 % Postgres CPU
-- per job, measured); this one costs jobs that keep the default nothing.
CREATE INDEX jobs_prioritized ON jobs (queue, status, priority DESC, id) WHERE priority > 0;
