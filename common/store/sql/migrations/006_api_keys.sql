-- API keys (issue 12). A key is `djs_<prefix>_<secret>`; only HMAC-SHA256(pepper, key) is
-- stored, with the prefix kept in clear to find the row. The pepper lives in the API's
-- settings (DJS_KEY_PEPPER), never in the database: a copy of this table alone cannot be
-- used to test guesses.
CREATE TYPE key_role AS ENUM ('submitter', 'viewer', 'operator', 'admin');
COMMENT ON TYPE key_role IS
  'submitter: create jobs, read its own; viewer: also read everything (tracebacks, workers); '
  'operator: also retry, promote, cancel, pause, resume, redrive; '
  'admin: also remove, clean, queue settings, keys';

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$'),
    role          key_role    NOT NULL,
    prefix        text        NOT NULL UNIQUE,
    hash          bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    rate_per_s    float8      CHECK (rate_per_s > 0)
);
COMMENT ON COLUMN api_keys.hash IS 'HMAC-SHA256 of the whole key with the server-side pepper';
COMMENT ON COLUMN api_keys.revoked_at IS 'set once; a revoked key is refused within 60 s';
COMMENT ON COLUMN api_keys.last_used_at IS 'flushed by each API process every 30 s or so, not per request';
COMMENT ON COLUMN api_keys.rate_per_s IS 'this key''s rate limit; NULL: its role''s default';

-- The key that created a job (NULL: submitted by the CLI or before keys existed). No foreign
-- key: a key's row outlives its revocation, and the insert hot path checks nothing more.
ALTER TABLE jobs ADD COLUMN owner_key_id bigint;
COMMENT ON COLUMN jobs.owner_key_id IS 'api_keys.id of the submitter; a submitter sees only its own jobs';
