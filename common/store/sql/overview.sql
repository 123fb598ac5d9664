-- GET /queues's reads besides the counts (counts.sql) and the live runners (runners.sql):
-- common/store/overview.py.

-- name: oldest_waiting
-- Per queue, seconds since its oldest pending job (the lowest id, one probe of
-- jobs_queue_status_id per queue) was due: run_at, or created_at when it had none.
SELECT q.name AS queue,
       extract(epoch FROM now() - (SELECT coalesce(j.run_at, j.created_at) FROM jobs j
                                   WHERE j.queue = q.name AND j.status = 'pending'
                                   ORDER BY j.id LIMIT 1)) AS oldest_waiting_s
FROM unnest(%(queues)s::text[]) AS q(name);
