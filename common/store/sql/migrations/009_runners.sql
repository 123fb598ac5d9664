-- The live runner registry (issue 13): each runner upserts its row every beat_interval_s
-- (common/runner/registry.py) and deletes it on a clean stop. A runner is live while its last
-- beat is at most two intervals old by the database clock; one that died without a word
-- drops off the listing by that rule, and its row is deleted an hour later by any runner's
-- beat. The table holds a row per runner alive or recently dead: a few hundred at most, so
-- the listing reads it whole. No index but the key, and room on every page (fillfactor), so
-- each beat is a HOT update that writes no index entry.
CREATE TABLE runners (
    id               text             PRIMARY KEY,
    host             text             NOT NULL,
    pid              integer          NOT NULL,
    queues           text[]           NOT NULL DEFAULT '{}',
    concurrency      integer          NOT NULL CHECK (concurrency >= 1),
    in_hand          integer          NOT NULL CHECK (in_hand >= 0),
    started_at       timestamptz      NOT NULL DEFAULT now(),
    last_beat        timestamptz      NOT NULL DEFAULT now(),
    beat_interval_s  double precision NOT NULL CHECK (beat_interval_s > 0),
    version          text             NOT NULL
) WITH (fillfactor = 50);
COMMENT ON TABLE runners IS 'runners that beat recently; live while last_beat >= now() - 2 * beat_interval_s';
COMMENT ON COLUMN runners.id IS 'the worker name the runner writes into jobs.worker and job_attempts.worker';
COMMENT ON COLUMN runners.queues IS 'the queues it serves; empty: every queue';
COMMENT ON COLUMN runners.in_hand IS 'jobs it held (claimed, not yet recorded) at its last beat';
COMMENT ON COLUMN runners.started_at IS 'when it first reached Postgres (database clock)';
COMMENT ON COLUMN runners.last_beat IS 'its last beat (database clock)';
COMMENT ON COLUMN runners.version IS 'the djs package version it runs';
