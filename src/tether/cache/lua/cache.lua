-- The Redis cache backend: one atomic script per operation, so every process sharing the Redis
-- sees one set of entries, one byte total and one eviction order.
--
-- Keys (all share one hash tag, so the script also runs on Redis Cluster):
--   KEYS[1]  totals  hash: n (entries), b (bytes), seq (a counter that orders uses)
--   KEYS[2]  sizes   hash: entry key -> size (the authoritative list of entries)
--   KEYS[3]  urls    hash: entry key -> URL (invalidation by prefix)
--   KEYS[4]  order   zset: entry key -> eviction score (lowest goes first)
--   KEYS[5]  keep    zset: entry key -> keep_until (expired entries are swept in that order)
-- ARGV[1] op, ARGV[2] the prefix of entry keys (an entry is the hash <prefix><key>: b = blob,
-- k = keep_until), ARGV[3] now (epoch seconds of the callers' clock), ARGV[4] the eviction policy
-- (lru | lfu | ttl), then per op:
--   get:    key                                    -> {blob or false, n, b}
--   peek:   key, lock key                          -> {blob or false, lock held (0/1), n, b}
--   put:    key, blob, size, keep_until, url, max_entries, max_bytes, expire_ms
--                                                  -> {stored (0/1), n, b, evicted}
--   del:    key...                                 -> {removed, n, b}
--   clear:  -                                      -> {removed, 0, 0}
--   totals: -                                      -> {n, b}
--
-- Freshness is the caller's business; an entry is returned until `now` reaches its keep_until.
-- Redis' own expiry (PEXPIRE on each entry hash, relative, a little past keep_until) frees the
-- memory of entries nobody asks for again; their size is given back the next time a sweep or a
-- lookup meets them, because the sizes hash does not expire.

local totals, sizes, urls, order, keep = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, prefix, now, policy = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local function count()
  local t = redis.call('HMGET', totals, 'n', 'b')
  return tonumber(t[1]) or 0, tonumber(t[2]) or 0
end

local function remove(key)
  local size = redis.call('HGET', sizes, key)
  redis.call('DEL', prefix .. key)
  redis.call('ZREM', order, key)
  redis.call('ZREM', keep, key)
  redis.call('HDEL', urls, key)
  if size then
    redis.call('HDEL', sizes, key)
    redis.call('HINCRBY', totals, 'n', -1)
    redis.call('HINCRBY', totals, 'b', -tonumber(size))
    return 1
  end
  return 0
end

local function next_seq()
  return redis.call('HINCRBY', totals, 'seq', 1)
end

-- A use moves an entry in the eviction order: lru to the back, lfu one hit up; ttl keeps it.
local function touch(key)
  if policy == 'lru' then
    redis.call('ZADD', order, next_seq(), key)
  elseif policy == 'lfu' then
    redis.call('ZINCRBY', order, 1, key)
  end
end

local function lookup(key)
  local held = redis.call('HMGET', prefix .. key, 'b', 'k')
  if not held[1] then
    remove(key)  -- gone (Redis expired it) or never stored: drop any bookkeeping left
    return false
  end
  if now >= tonumber(held[2]) then
    remove(key)
    return false
  end
  touch(key)
  return held[1]
end

if op == 'get' then
  local blob = lookup(ARGV[5])
  local n, b = count()
  return {blob, n, b}
end

if op == 'peek' then
  local blob = lookup(ARGV[5])
  local locked = redis.call('EXISTS', ARGV[6])
  local n, b = count()
  return {blob, locked, n, b}
end

if op == 'put' then
  local key, blob, size, keep_until = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
  local url, max_entries, max_bytes, expire_ms = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', keep, '-inf', now, 'LIMIT', 0, 100)) do
    remove(old)
  end
  remove(key)
  if size > max_bytes then
    local n, b = count()
    return {0, n, b, 0}
  end
  redis.call('HSET', prefix .. key, 'b', blob, 'k', string.format('%.17g', keep_until))
  redis.call('PEXPIRE', prefix .. key, expire_ms)
  redis.call('HSET', sizes, key, size)
  redis.call('HSET', urls, key, url)
  redis.call('ZADD', keep, keep_until, key)
  local seq = next_seq()
  if policy == 'lru' then
    redis.call('ZADD', order, seq, key)
  elseif policy == 'lfu' then
    -- one hit so far; the fraction orders equal counts oldest first
    redis.call('ZADD', order, 1 + seq / 1e12, key)
  else
    redis.call('ZADD', order, keep_until, key)
  end
  redis.call('HINCRBY', totals, 'n', 1)
  redis.call('HINCRBY', totals, 'b', size)
  local evicted = 0
  local n, b = count()
  while n > max_entries or b > max_bytes do
    local victims = redis.call('ZRANGE', order, 0, 1)
    local victim = victims[1]
    if victim == key then
      victim = victims[2]  -- never evict the entry being stored for its own sake
    end
    if not victim then
      break
    end
    remove(victim)
    evicted = evicted + 1
    n, b = count()
  end
  return {1, n, b, evicted}
end

if op == 'del' then
  local removed = 0
  for i = 5, #ARGV do
    removed = removed + remove(ARGV[i])
  end
  local n, b = count()
  return {removed, n, b}
end

if op == 'clear' then
  local keys = redis.call('HKEYS', sizes)
  for _, key in ipairs(keys) do
    redis.call('DEL', prefix .. key)
  end
  redis.call('DEL', sizes, urls, order, keep)
  redis.call('HSET', totals, 'n', 0, 'b', 0)
  return {#keys, 0, 0}
end

if op == 'totals' then
  local n, b = count()
  return {n, b}
end

return redis.error_reply('cache.lua: unknown op ' .. tostring(op))
