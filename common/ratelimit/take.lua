-- take: refill one key's token bucket for the time passed, then grant up to ARGV[3] tokens.
-- KEYS[1] the bucket, a hash: tokens (a float), s and us (when it was last refilled)
-- ARGV[1] rate, tokens per second; ARGV[2] capacity, tokens; ARGV[3] tokens wanted
-- Returns {granted, wait_ms}: wait_ms, when nothing was granted, is how long until one token
-- is there (0 otherwise). Times come from the Redis clock, the one clock every API process
-- shares; a bucket not touched for as long as it takes to fill expires (it would be full).
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local state = redis.call('HMGET', KEYS[1], 'tokens', 's', 'us')
local tokens = capacity
if state[1] then
  local elapsed = (tonumber(t[1]) - tonumber(state[2])) + (tonumber(t[2]) - tonumber(state[3])) / 1e6
  tokens = math.min(capacity, tonumber(state[1]) + math.max(0, elapsed) * rate)
end
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 's', t[1], 'us', t[2])
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
local wait_ms = 0
if granted == 0 then wait_ms = math.ceil((1 - tokens) / rate * 1000) end
return {granted, wait_ms}
