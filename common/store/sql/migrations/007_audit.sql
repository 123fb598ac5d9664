-- The audit log (issue 12): every admin action that changes jobs or settings, written in the
-- same transaction as the change (common/store/audited.py), so the two commit or roll back
-- together. Submissions are not audited: each job keeps the key that created it.
-- No foreign key to api_keys: an entry outlives its key, and names who acted even after the
-- key is revoked or renamed (key_name and role are copied, as they were then).
CREATE TABLE audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    key_id      bigint,
    key_name    text        NOT NULL,
    role        text        NOT NULL,
    verb        text        NOT NULL,
    target      text,
    filter      jsonb,
    jobs        integer     CHECK (jobs >= 0),
    request_id  text
);
COMMENT ON TABLE audit IS 'admin actions that changed jobs or settings; newest first by id';
COMMENT ON COLUMN audit.key_id IS 'api_keys.id of the key that acted; NULL: not an API key (the CLI on the database)';
COMMENT ON COLUMN audit.role IS 'the key''s role when it acted (or cli)';
COMMENT ON COLUMN audit.verb IS 'retry, promote, cancel, remove, redrive, clean, pause, resume, queue_settings, key_create, key_revoke';
COMMENT ON COLUMN audit.target IS 'the job id or queue the verb named; NULL for a verb by filter';
COMMENT ON COLUMN audit.filter IS 'what the verb was asked to act on: a filter and limit, or the request body';
COMMENT ON COLUMN audit.jobs IS 'how many jobs the verb changed; NULL for a change of settings or keys';
COMMENT ON COLUMN audit.request_id IS 'the API request id, to find the request in the logs';
