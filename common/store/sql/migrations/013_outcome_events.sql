-- An attempt the runner ends (completed, failed, retried, released) is written once, with its
-- outcome, and says where the job went (to_status). That row is the job's move out of active:
-- the update trigger no longer writes an event row for it, and get_events (queries.sql) reads
-- it from the attempt. One row, one heap tuple and two index entries less per job: Postgres
-- CPU of insert + claim + complete on one backend went from 96 to 85 us a job (the note of
-- issue 16). Every other move (a claim, the janitor's, an admin's) keeps its event row.

ALTER TABLE job_attempts ADD COLUMN to_status job_status;
COMMENT ON COLUMN job_attempts.to_status IS
  'where the runner moved the job when this attempt ended; NULL when no runner ended it '
  '(stalled: the janitor''s event row says it)';

CREATE OR REPLACE FUNCTION djs_events_on_update() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off  -- migration 010: the plan PL/pgSQL keeps must be linear
AS $$
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
          AND NOT (changed_by = 'runner' AND old_status = 'active')  -- its attempt says it
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
