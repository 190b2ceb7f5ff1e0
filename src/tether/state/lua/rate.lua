-- GCRA over several windows: a port of tether.state._algorithms.rate_acquire / rate_pause /
-- rate_status, one atomic script per store operation.
--
-- KEYS[1]  the limiter hash: one field per window id ("<limit>/<period>") holding its
--          theoretical arrival time, "paused_until", and "_seq" (a counter naming reservations)
-- KEYS[2]  the sorted set of reserved future send slots (score = slot time): the waiting callers
-- ARGV[1]  one string, fields separated by "|": op, now, keep (seconds added to the keys'
--          expiry), then per op:
--   acquire: cost, max_wait ("" = none), max_queue ("" = none), n, n x (id, interval, burst)
--   pause:   until
--   status:  n, n x id
-- Times travel as decimal strings (%.17g round-trips a double exactly); answers too (one
-- "|"-separated string), because Redis truncates Lua numbers to integers.

-- EPSILON, fmt, ARGS and reply come from _prelude.lua.

local op = ARGS[1]
local now = tonumber(ARGS[2])
local keep = tonumber(ARGS[3])

-- Entries <= now + EPSILON are past reservations (_algorithms._prune).
local function prune()
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now + EPSILON))
end

-- Extend (never shorten) a key's expiry to `seconds` from now plus `keep`.
local function expire_after(key, seconds)
  local ms = math.ceil((math.max(seconds, 0) + keep) * 1000)
  local current = redis.call('PTTL', key)
  if current == -2 then
    return
  end
  if current < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

local function stored(field)
  local raw = redis.call('HGET', KEYS[1], field)
  if raw then
    return tonumber(raw)
  end
  return nil
end

if op == 'acquire' then
  local cost = tonumber(ARGS[4])
  local max_wait = nil
  if ARGS[5] ~= '' then max_wait = tonumber(ARGS[5]) end
  local max_queue = nil
  if ARGS[6] ~= '' then max_queue = tonumber(ARGS[6]) end
  local n = tonumber(ARGS[7])
  local ids, intervals, bursts, tats = {}, {}, {}, {}
  for i = 1, n do
    local base = 7 + (i - 1) * 3
    ids[i] = ARGS[base + 1]
    intervals[i] = tonumber(ARGS[base + 2])
    bursts[i] = tonumber(ARGS[base + 3])
  end
  local values = redis.call('HMGET', KEYS[1], 'paused_until', unpack(ids))
  local paused = tonumber(values[1]) or 0.0
  for i = 1, n do
    if values[i + 1] then tats[ids[i]] = tonumber(values[i + 1]) end
  end
  prune()
  local slot = math.max(now, paused)
  for i = 1, n do
    local tat = math.max(tats[ids[i]] or now, now)
    slot = math.max(slot, tat + (cost - bursts[i]) * intervals[i])
  end
  local wait = slot - now
  if wait <= EPSILON then
    wait = 0.0
    slot = now
  end
  local granted, reason = 1, ''
  if max_wait ~= nil and wait > math.max(0.0, max_wait) + EPSILON then
    granted, reason = 0, 'wait'
  elseif wait > 0 and max_queue ~= nil and redis.call('ZCARD', KEYS[2]) >= max_queue then
    granted, reason = 0, 'queue_full'
  end
  local horizon = paused
  if granted == 1 then
    local fields = {}
    for i = 1, n do
      local tat = math.max(tats[ids[i]] or now, slot)
      tats[ids[i]] = tat + cost * intervals[i]
      fields[#fields + 1] = ids[i]
      fields[#fields + 1] = fmt(tats[ids[i]])
      horizon = math.max(horizon, tats[ids[i]])
    end
    redis.call('HSET', KEYS[1], unpack(fields))
    if wait > 0 then
      local seq = redis.call('HINCRBY', KEYS[1], '_seq', 1)
      redis.call('ZADD', KEYS[2], fmt(slot), tostring(seq))
      expire_after(KEYS[2], horizon - now)
    end
    expire_after(KEYS[1], horizon - now)
  end
  local answer = {granted, fmt(wait), reason, redis.call('ZCARD', KEYS[2]), fmt(paused)}
  for i = 1, n do
    local tat = tats[ids[i]]
    if tat then answer[#answer + 1] = fmt(tat) else answer[#answer + 1] = '' end
  end
  return reply(answer)
end

if op == 'pause' then
  local until_ = tonumber(ARGS[4])
  prune()
  local paused = stored('paused_until') or 0.0
  if until_ > paused then
    paused = until_
    redis.call('HSET', KEYS[1], 'paused_until', fmt(paused))
    expire_after(KEYS[1], paused - now)
  end
  if paused > now then
    return reply({paused})
  end
  return reply({0.0})
end

if op == 'status' then
  -- Read-only: past reservations are simply not counted.
  local n = tonumber(ARGS[4])
  local ids = {}
  for i = 1, n do ids[i] = ARGS[4 + i] end
  local values = redis.call('HMGET', KEYS[1], 'paused_until', unpack(ids))
  local queued = redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now + EPSILON), '+inf')
  local answer = {queued, fmt(tonumber(values[1]) or 0.0)}
  for i = 1, n do
    answer[#answer + 1] = values[i + 1] or ''
  end
  return reply(answer)
end

return redis.error_reply('tether rate script: unknown op ' .. tostring(op))
