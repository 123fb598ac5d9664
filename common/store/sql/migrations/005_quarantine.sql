-- A row a background loop cannot process (a value djs cannot read back, an outcome Postgres
-- refuses) is quarantined as failed with this reason instead of stopping the loop.
ALTER TYPE fail_reason ADD VALUE IF NOT EXISTS 'invalid_record';
COMMENT ON TYPE fail_reason IS
  'why a job is failed: exhausted (attempts used up), non_retryable (NonRetryableError), '
  'timeout (last attempt timed out), stalled (its runner vanished too often), '
  'cancelled (cancelled while active), invalid_record (a loop could not process its row)';
