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
    INSERT INTO job_count_deltas (queue, status, owner_key_id, minute, n)
    SELECT side.queue, side.status, side.owner_key_id, side.minute, sum(side.d)
    FROM moved m CROSS JOIN LATERAL (VALUES
        (m.old_queue, m.old_status, m.old_owner, NULL::timestamptz, -1),
        (m.queue, m.status, m.owner_key_id,
         CASE WHEN m.status IN ('completed', 'failed')
              THEN date_trunc('minute', least(coalesce(m.finished_at, now()), now())) END,
         1)
    ) AS side (queue, status, owner_key_id, minute, d)
    GROUP BY 1, 2, 3, 4
    HAVING sum(side.d) <> 0;
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
