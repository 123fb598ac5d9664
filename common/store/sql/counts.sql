-- Exact job counts and per-minute outcomes (migration 008): the folded tables plus the deltas
-- the statement triggers appended since the last fold, read in one statement (one snapshot).

-- name: job_counts
-- Jobs per queue and status; with an owner, only that key's. `deltas` is how many rows of
-- job_count_deltas the answer summed: the caller folds them when they pile up.
WITH every AS (
    SELECT queue, status, owner_key_id, n FROM job_counts
    UNION ALL
    SELECT queue, status, owner_key_id, n FROM job_count_deltas
)
SELECT queue, status::text AS status, sum(n)::bigint AS n,
       (SELECT count(*) FROM job_count_deltas) AS deltas
FROM every
WHERE %(owner_key_id)s::bigint IS NULL OR owner_key_id = %(owner_key_id)s::bigint
GROUP BY queue, status
HAVING sum(n) <> 0;

-- name: fold_job_counts
-- Take every delta committed so far (a delta committed meanwhile stays for the next fold; a
-- concurrent fold skips the rows this one deleted) into job_counts and job_outcomes.
WITH taken AS (
    DELETE FROM job_count_deltas RETURNING queue, status, owner_key_id, minute, n
), counted AS (
    INSERT INTO job_counts (queue, status, owner_key_id, n)
    SELECT queue, status, owner_key_id, sum(n) FROM taken GROUP BY 1, 2, 3
    ON CONFLICT (queue, status, owner_key_id) DO UPDATE SET n = job_counts.n + excluded.n
), outcomes AS (
    INSERT INTO job_outcomes (queue, minute, completed, failed)
    SELECT queue, minute, coalesce(sum(n) FILTER (WHERE status = 'completed'), 0),
           coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)
    FROM taken WHERE minute IS NOT NULL GROUP BY 1, 2
    ON CONFLICT (queue, minute) DO UPDATE
    SET completed = job_outcomes.completed + excluded.completed,
        failed = job_outcomes.failed + excluded.failed
)
SELECT count(*) AS folded FROM taken;

-- name: drop_empty_counts
-- After a fold, in its transaction: a (queue, status, owner) with no job left.
DELETE FROM job_counts WHERE n = 0;

-- name: prune_outcomes
-- The per-minute outcomes older than a day (GET /stats shows the last hour).
DELETE FROM job_outcomes WHERE minute < now() - interval '1 day';
