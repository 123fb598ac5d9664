-- wait_score: the score of a ready job in a queue's wait (or suspect) zset, prepended to every
-- script that makes jobs ready (common/dispatch/redisqueue.py loads it).
-- (1000 - priority) * 2^43 + id: higher priority first, then FIFO by id, exact in a double
-- for ids below 2^43.
local function wait_score(prio, id)
  return (1000 - prio) * 8796093022208 + tonumber(id)
end
