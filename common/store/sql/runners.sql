-- The live runner registry (migration 009): one upsert per beat, a delete on a clean stop, a
-- bounded prune of long-dead rows, and the live listing (common/store/runners.py).

-- name: _live
-- A runner is live while its last beat is at most two of its intervals old (database clock).
r.last_beat >= now() - make_interval(secs => 2 * r.beat_interval_s)

-- name: beat_runner
-- Register or beat. started_at is the one this runner got from its first beat (NULL: this is
-- its first), so a row pruned or deleted meanwhile comes back as it was.
INSERT INTO runners AS r (id, host, pid, queues, concurrency, in_hand, started_at, last_beat,
                          beat_interval_s, version)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s::text[], %(concurrency)s, %(in_hand)s,
        coalesce(%(started_at)s::timestamptz, now()), now(), %(beat_interval_s)s, %(version)s)
ON CONFLICT (id) DO UPDATE
SET host = EXCLUDED.host, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
    concurrency = EXCLUDED.concurrency, in_hand = EXCLUDED.in_hand,
    started_at = EXCLUDED.started_at, last_beat = now(),
    beat_interval_s = EXCLUDED.beat_interval_s, version = EXCLUDED.version
RETURNING started_at;

-- name: remove_runner
-- A clean stop: the runner is gone at once, not two intervals later.
DELETE FROM runners WHERE id = %(id)s;

-- name: prune_runners
-- Rows of runners dead for over an hour, a bounded batch; rows another runner is pruning
-- are skipped, not waited for.
DELETE FROM runners
WHERE id IN (SELECT id FROM runners WHERE last_beat < now() - interval '1 hour'
             ORDER BY last_beat LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: live_runners
-- Oldest first, bounded.
SELECT r.id, r.host, r.pid, r.queues, r.concurrency, r.in_hand, r.started_at, r.last_beat,
       r.beat_interval_s, r.version
FROM runners r
WHERE {{live}}
ORDER BY r.started_at, r.id
LIMIT %(limit)s;

-- name: live_runners_per_queue
-- Live runners by the queue they serve, in one pass; a NULL queue counts the runners of
-- every queue (an empty list).
SELECT q.name AS queue, count(*)::integer AS runners
FROM runners r
CROSS JOIN LATERAL unnest(CASE WHEN cardinality(r.queues) = 0 THEN ARRAY[NULL::text]
                               ELSE r.queues END) AS q(name)
WHERE {{live}}
GROUP BY q.name;
