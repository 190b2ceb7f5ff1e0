-- Counters, values and locks on the callers' time line, one atomic script per store operation.
--
-- A value or counter is a hash: "v" (bytes) or "n" (a number as %.17g), and "x" (expires at,
-- epoch seconds from the callers; absent = never). A lock is a hash: "o" (owner), "x".
-- Liveness compares "x" with the `now` the caller passed, exactly as the memory store does; the
-- key's own Redis expiry (relative, plus `keep` seconds) only cleans up keys nobody reads again.
--
-- KEYS[1]  the key
-- ARGV     op, now, keep, then per op:
--   incr: amount, ttl ("" = none)      get_counter, get: -      set: value, ttl ("" = none)
--   lock: owner, ttl                   unlock: owner

local function fmt(x)
  return string.format('%.17g', x)
end

local op = ARGV[1]
local now = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local key = KEYS[1]

local function live(expires)
  return expires == nil or now < expires
end

local function expire_in(ttl)
  redis.call('PEXPIRE', key, math.ceil((math.max(ttl, 0) + keep) * 1000))
end

if op == 'incr' then
  local amount = tonumber(ARGV[4])
  local ttl = tonumber(ARGV[5])  -- nil when ""
  local held = redis.call('HMGET', key, 'n', 'x')
  local value = nil
  if held[1] and live(tonumber(held[2])) then
    value = tonumber(held[1])
  end
  if value == nil then
    -- missing, expired, or holding a value: a new counter starting at 0
    redis.call('DEL', key)
    value = 0.0
    if ttl ~= nil then
      redis.call('HSET', key, 'x', fmt(now + ttl))
      expire_in(ttl)
    end
  end
  value = value + amount
  redis.call('HSET', key, 'n', fmt(value))
  return fmt(value)
end

if op == 'get_counter' then
  local held = redis.call('HMGET', key, 'n', 'x')
  if held[1] and live(tonumber(held[2])) then
    return held[1]
  end
  return '0'
end

if op == 'get' then
  local held = redis.call('HMGET', key, 'v', 'x')
  if held[1] and live(tonumber(held[2])) then
    return held[1]
  end
  return false
end

if op == 'set' then
  local ttl = tonumber(ARGV[5])
  redis.call('DEL', key)
  if ttl ~= nil then
    redis.call('HSET', key, 'v', ARGV[4], 'x', fmt(now + ttl))
    expire_in(ttl)
  else
    redis.call('HSET', key, 'v', ARGV[4])
  end
  return 1
end

if op == 'lock' then
  local owner = ARGV[4]
  local ttl = tonumber(ARGV[5])
  local held = redis.call('HMGET', key, 'o', 'x')
  if held[1] and held[1] ~= owner and now < tonumber(held[2]) then
    return 0
  end
  redis.call('HSET', key, 'o', owner, 'x', fmt(now + ttl))
  expire_in(ttl)
  return 1
end

if op == 'unlock' then
  if redis.call('HGET', key, 'o') == ARGV[4] then
    redis.call('DEL', key)
    return 1
  end
  return 0
end

return redis.error_reply('tether kv script: unknown op ' .. tostring(op))
