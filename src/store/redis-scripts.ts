/**
 * The Lua scripts of the Redis store (redis-store.ts runs them): every multi-key change is one script, so it is
 * atomic across instances.
 */

/**
 * The `count` and `schedule` options of a delete. KEYS[4] is the counters hash, KEYS[5..] the schedules. From ARGV[c]
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

/** Takes up to ARGV[3] ids due by ARGV[1] and moves them all to ARGV[2] with one ZADD. */
export const CLAIM_DUE_LUA = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local moves = {}
for _, id in ipairs(ids) do
  table.insert(moves, ARGV[2])
  table.insert(moves, id)
  if #moves >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(moves))
    moves = {}
  end
end
if #moves > 0 then redis.call('ZADD', KEYS[1], unpack(moves)) end
return ids
`;

/**
 * Several puts in one script (redis-put-batch.ts gathers them): each is checked and written on its own, in
 * order, with compare-and-set and counter limits, but what they share is done once at the end: one HINCRBY per counter with the sum
 * of the changes, one ZADD and one ZREM per schedule with each id's last move, one ZADD per collection index
 * for the new documents and one SADD of their collections. KEYS[1] is the collections set, KEYS[2] the counters
 * hash, the rest documents, indexes and schedules, named by position. ARGV[1] is the number of puts; each is
 * (doc key, index key, id, collection, expected version or '', JSON, number of counter changes, then (name,
 * delta, max or '') each, number of schedule moves, then (schedule key, 'u' or due time) each). Returns three
 * numbers per put: [1, version] written, [0, version] version conflict, [2, current, change index] refused by a
 * counter limit (-1 pads the first two).
 */
export const PUT_MANY_LUA = `
local out = {}
local versions = {}
local current = {}
local delta = {}
local names = {}
local moves = {}
local created = {}
local p = 2
for _ = 1, tonumber(ARGV[1]) do
  local dk = KEYS[tonumber(ARGV[p])]
  local ik = tonumber(ARGV[p + 1])
  local id = ARGV[p + 2]
  local expected = ARGV[p + 4]
  local c = p + 7
  local nc = tonumber(ARGV[p + 6])
  local s = c + 3 * nc
  local ns = tonumber(ARGV[s])
  local v = versions[dk]
  if v == nil then v = tonumber(redis.call('HGET', dk, 'v') or '0') end
  versions[dk] = v
  local reply = nil
  if expected ~= '' and tonumber(expected) ~= v then reply = {0, v, -1} end
  if not reply then
    for j = 0, nc - 1 do
      local name = ARGV[c + 3 * j]
      local d = tonumber(ARGV[c + 1 + 3 * j])
      local max = ARGV[c + 2 + 3 * j]
      if max ~= '' and d > 0 then
        if current[name] == nil then current[name] = tonumber(redis.call('HGET', KEYS[2], name) or '0') end
        local now = current[name] + (delta[name] or 0)
        if now + d > tonumber(max) then
          reply = {2, now, j}
          break
        end
      end
    end
  end
  if not reply then
    v = v + 1
    versions[dk] = v
    redis.call('HSET', dk, 'v', v, 'd', ARGV[p + 5])
    if v == 1 then
      local t = created[ik]
      if not t then
        t = {ARGV[p + 3], {}}
        created[ik] = t
      end
      table.insert(t[2], 0)
      table.insert(t[2], id)
    end
    for j = 0, nc - 1 do
      local name = ARGV[c + 3 * j]
      if delta[name] == nil then
        delta[name] = 0
        table.insert(names, name)
      end
      delta[name] = delta[name] + tonumber(ARGV[c + 1 + 3 * j])
    end
    for j = 0, ns - 1 do
      local k = tonumber(ARGV[s + 1 + 2 * j])
      local m = moves[k]
      if not m then
        m = {order = {}, last = {}}
        moves[k] = m
      end
      if m.last[id] == nil then table.insert(m.order, id) end
      m.last[id] = ARGV[s + 2 + 2 * j]
    end
    reply = {1, v, -1}
  end
  out[#out + 1] = reply[1]
  out[#out + 1] = reply[2]
  out[#out + 1] = reply[3]
  p = s + 1 + 2 * ns
end
for _, name in ipairs(names) do
  if delta[name] ~= 0 then redis.call('HINCRBY', KEYS[2], name, delta[name]) end
end
for k, t in pairs(created) do
  redis.call('ZADD', KEYS[k], unpack(t[2]))
  redis.call('SADD', KEYS[1], t[1])
end
for k, m in pairs(moves) do
  local adds = {}
  local removes = {}
  for _, id in ipairs(m.order) do
    local mode = m.last[id]
    if mode == 'u' then table.insert(removes, id)
    else
      table.insert(adds, mode)
      table.insert(adds, id)
    end
  end
  if #removes > 0 then redis.call('ZREM', KEYS[k], unpack(removes)) end
  if #adds > 0 then redis.call('ZADD', KEYS[k], unpack(adds)) end
end
return out
`;

/**
 * CLAIM_DUE, then the document of every claimed id: ARGV[4] is the key prefix of the collection's documents
 * (their keys are known only once the ids are). Returns id, version and JSON for each, false for a missing one.
 */
export const CLAIM_DUE_DOCS_LUA = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local moves = {}
local out = {}
for _, id in ipairs(ids) do
  table.insert(moves, ARGV[2])
  table.insert(moves, id)
  if #moves >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(moves))
    moves = {}
  end
  local doc = redis.call('HMGET', ARGV[4] .. id, 'v', 'd')
  table.insert(out, id)
  table.insert(out, doc[1])
  table.insert(out, doc[2])
end
if #moves > 0 then redis.call('ZADD', KEYS[1], unpack(moves)) end
return out
`;
