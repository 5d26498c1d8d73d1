/**
 * The Lua scripts of the Redis store (redis-store.ts runs them): every multi-key change is one script, so it is
 * atomic across instances.
 */

/**
 * The `count` and `schedule` write options. KEYS[4] is the counters hash, KEYS[5..] the schedules. From ARGV[c]
 * on: the number of counter changes, then (name, delta, max or '') for each; after them one mode per schedule, in
 * the order of the keys: 'u' (remove) or a due time. check_counters runs before anything is written.
 */
const APPLY_OPTIONS = `
local function check_counters(c)
  for j = 0, tonumber(ARGV[c]) - 1 do
    local delta = tonumber(ARGV[c + 2 + 3 * j])
    local max = ARGV[c + 3 + 3 * j]
    if max ~= '' and delta > 0 then
      local current = tonumber(redis.call('HGET', KEYS[4], ARGV[c + 1 + 3 * j]) or '0')
      if current + delta > tonumber(max) then return {2, current, j} end
    end
  end
  return nil
end
local function apply_counters(c)
  for j = 0, tonumber(ARGV[c]) - 1 do
    local delta = tonumber(ARGV[c + 2 + 3 * j])
    if delta ~= 0 then redis.call('HINCRBY', KEYS[4], ARGV[c + 1 + 3 * j], delta) end
  end
end
local function apply_schedule(c, id)
  local first = c + 1 + 3 * tonumber(ARGV[c])
  for i = 5, #KEYS do
    local mode = ARGV[first + i - 5]
    if mode == 'u' then redis.call('ZREM', KEYS[i], id)
    else redis.call('ZADD', KEYS[i], mode, id) end
  end
end
`;

export const PUT_LUA = `${APPLY_OPTIONS}
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= v then return {0, v} end
local refused = check_counters(5)
if refused then return refused end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[1])
if v == 1 then
  redis.call('ZADD', KEYS[2], 0, ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
end
apply_counters(5)
apply_schedule(5, ARGV[3])
return {1, v}
`;

export const DELETE_LUA = `${APPLY_OPTIONS}
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= v then return {0, v} end
apply_schedule(4, ARGV[2])
if v == 0 then return {1, 0} end
apply_counters(4)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[3]) end
return {1, v}
`;

export const RELEASE_LOCK_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export const EXTEND_LOCK_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

export const CLAIM_DUE_LUA = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
`;
