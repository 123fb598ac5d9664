-- A key role for Prometheus scrapers (issue 14): GET /metrics and nothing else. It stands
-- outside the submitter < viewer < operator < admin ladder (common/apikeys.py), so it is
-- added last and no ordering of the enum is relied on. ADD VALUE cannot be used in the
-- transaction that adds it; nothing here uses it.
ALTER TYPE key_role ADD VALUE IF NOT EXISTS 'metrics';
COMMENT ON TYPE key_role IS
  'submitter: create jobs, read its own; viewer: also read everything (tracebacks, workers); '
  'operator: also retry, promote, cancel, pause, resume, redrive; '
  'admin: also remove, clean, queue settings, keys; '
  'metrics: GET /metrics only (a scrape key)';
