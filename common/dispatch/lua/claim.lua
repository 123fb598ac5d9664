-- claim: promote due delayed jobs, then pop up to ARGV[1] ready ids into active.
-- KEYS[1] wait zset, KEYS[2] delayed zset, KEYS[3] prio hash, KEYS[4] active zset,
-- KEYS[5] paused flag, KEYS[6] suspect zset, KEYS[7] signal list
-- ARGV[1] max ids to claim, ARGV[2] drop active entries older than this many ms,
-- ARGV[3] 1 if the runner has nothing in flight
-- Returns {now_ms, next_due_ms or -1, mode, id, id, ...}; times come from the Redis clock.
-- mode 0: ordinary ids; 1: one suspect id, to run alone; 2: a suspect waits for an idle
-- runner, so this one claims nothing until its jobs in flight are done.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[5]) == 1 then return {now, -1, 0} end

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local prio = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('ZADD', KEYS[1], 'NX', wait_score(prio, id), id)
end
if #due > 0 then
  redis.call('ZREM', KEYS[2], unpack(due))
  redis.call('HDEL', KEYS[3], unpack(due))
end

local out = {now, -1, 0}
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt > 0 then out[2] = tonumber(nxt[2]) end

local popped
if redis.call('ZCARD', KEYS[6]) > 0 then
  if ARGV[3] ~= '1' then
    out[3] = 2
    return out
  end
  out[3] = 1
  popped = redis.call('ZPOPMIN', KEYS[6], 1)
else
  popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
end
for i = 1, #popped, 2 do
  out[#out + 1] = popped[i]
  redis.call('ZADD', KEYS[4], now, popped[i])
end
-- Postgres holds the truth for running jobs; an active entry only outlives its runner.
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[2]))
-- Pass the wake-up on: jobs left over need another runner's look (one token, see
-- lua/enqueue.lua); with none left, at most one token stays (a delayed job's wake-up).
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[6]) > 0 then
  if redis.call('LLEN', KEYS[7]) == 0 then redis.call('LPUSH', KEYS[7], '1') end
else
  redis.call('LTRIM', KEYS[7], 0, 0)
end
return out
