-- Alert hooks per queue (issue 14): an admin sets a URL that gets a POST when jobs fail, when
-- the schedule lag passes a threshold, or when the queue has waiting jobs and no runner.
-- Every runner and every `djs api` runs the alert loop (common/upkeep/alerts.py); each send is
-- claimed by a conditional UPDATE of queue_alert_sends, so one POST goes out per window
-- across all of them.
CREATE TABLE queue_alerts (
    queue            text             PRIMARY KEY,
    url              text             NOT NULL,
    lag_threshold_s  double precision CHECK (lag_threshold_s > 0),
    min_interval_s   double precision NOT NULL CHECK (min_interval_s >= 1),
    updated_at       timestamptz      NOT NULL DEFAULT now()
);
COMMENT ON COLUMN queue_alerts.lag_threshold_s IS 'schedule_lag fires past this; NULL: never';
COMMENT ON COLUMN queue_alerts.min_interval_s IS 'at most one POST per (queue, kind) per this many seconds';

CREATE TABLE queue_alert_sends (
    queue         text        NOT NULL REFERENCES queue_alerts (queue) ON DELETE CASCADE,
    kind          text        NOT NULL CHECK (kind IN ('failed', 'schedule_lag', 'no_runners')),
    last_sent_at  timestamptz,
    -- failed: jobs that finished failed after this have not been reported yet.
    mark          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, kind)
);
COMMENT ON TABLE queue_alert_sends IS 'the rate limit and the failed watermark of each (queue, kind)';

-- The failed alert reads the failures of a queue since its watermark every turn: along this
-- index, not over every failed job the queue keeps. Only failed jobs are in it.
CREATE INDEX jobs_failed_finished ON jobs (queue, finished_at) WHERE status = 'failed';
