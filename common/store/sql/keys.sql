-- API keys (migration 006): created, listed and revoked by `djs keys` and the admin API,
-- looked up by prefix by the API's authorizer.

-- name: create_key
INSERT INTO api_keys (name, role, prefix, hash, rate_per_s)
VALUES (%(name)s, %(role)s::key_role, %(prefix)s, %(hash)s, %(rate_per_s)s)
RETURNING id, name, role::text AS role, prefix, created_at, revoked_at, last_used_at, rate_per_s;

-- name: list_keys
-- Never the hash.
SELECT id, name, role::text AS role, prefix, created_at, revoked_at, last_used_at, rate_per_s
FROM api_keys ORDER BY id;

-- name: key_by_prefix
SELECT id, name, role::text AS role, hash, revoked_at, rate_per_s
FROM api_keys WHERE prefix = %(prefix)s;

-- name: revoke_key
-- By id or by name; revoking a revoked key keeps its first revocation time.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s OR name = %(name)s
RETURNING id, name, role::text AS role, prefix, created_at, revoked_at, last_used_at, rate_per_s;

-- name: touch_keys
-- One statement for every key an API process saw since its last flush.
UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)
FROM unnest(%(ids)s::bigint[], %(ats)s::timestamptz[]) AS u(id, at)
WHERE k.id = u.id;
