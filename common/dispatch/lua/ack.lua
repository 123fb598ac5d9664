-- ack: a runner has recorded these jobs in Postgres; forget them in Redis.
-- KEYS[1] active zset
-- ARGV: job ids
-- Returns the number removed.
if #ARGV == 0 then return 0 end
return redis.call('ZREM', KEYS[1], unpack(ARGV))
