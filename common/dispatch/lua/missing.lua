-- missing: which of these ids does Redis not hold in line (wait, suspect or delayed)?
-- The reconciler pushes only those. An id in the active set alone does not count: its runner
-- may have died between popping it and claiming it.
-- KEYS[1] wait zset, KEYS[2] suspect zset, KEYS[3] delayed zset
-- ARGV: job ids
-- Returns the missing ids.
local missing = {}
for _, id in ipairs(ARGV) do
  if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[2], id)
      and not redis.call('ZSCORE', KEYS[3], id) then
    missing[#missing + 1] = id
  end
end
return missing
