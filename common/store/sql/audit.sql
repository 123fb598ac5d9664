-- The audit log (migration 007).

-- name: insert_audit
-- One entry, on the connection (and in the transaction) of the change it records.
INSERT INTO audit (key_id, key_name, role, verb, target, filter, jobs, request_id)
VALUES (%(key_id)s, %(key_name)s, %(role)s, %(verb)s, %(target)s, %(filter)s, %(jobs)s,
        %(request_id)s);

-- name: list_audit
-- A page, newest first, after a cursor (the last id of the page before); one row more than
-- asked says whether another page follows.
SELECT id, at, key_id, key_name, role, verb, target, filter, jobs, request_id FROM audit
WHERE %(cursor)s::bigint IS NULL OR id < %(cursor)s::bigint
ORDER BY id DESC LIMIT %(limit)s + 1;
