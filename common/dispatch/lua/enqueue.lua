-- enqueue: make jobs ready (wait), suspect, or delayed. Idempotent: a job already waiting
-- keeps its place.
-- KEYS[1] wait zset, KEYS[2] delayed zset, KEYS[3] prio hash, KEYS[4] signal list,
-- KEYS[5] suspect zset
-- ARGV: quadruples of (id, priority, due_ms, suspect); due_ms = 0 means ready now;
-- suspect = 1 for a ready job whose runner died running it (it will run alone).
-- Returns the number of jobs made ready.
-- Ready jobs are scored by wait_score (lua/_wait_score.lua).
local ready = 0
for i = 1, #ARGV, 4 do
  local id, prio, due = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if due == 0 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    local line = KEYS[1]
    if ARGV[i + 3] == '1' then line = KEYS[5] end
    ready = ready + redis.call('ZADD', line, 'NX', wait_score(prio, id), id)
  else
    redis.call('ZADD', KEYS[2], due, id)
    if prio ~= 0 then redis.call('HSET', KEYS[3], id, prio) end
  end
end
-- One wake-up token: an idle runner looks, claims as many jobs as it has free slots, and
-- leaves a token for the next runner if jobs remain (lua/claim.lua). A token per job woke
-- every idle runner for a handful of jobs: more, smaller claims. A delayed job wakes one
-- runner too, so it recomputes how long to sleep.
if redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], '1') end
return ready
