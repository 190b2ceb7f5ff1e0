-- The Redis dead-letter queue (tether.dlq.redis.RedisDLQ): one atomic script per backend method.
--
-- KEYS[1]  prefix of this queue's keys, ending in ":" (all share one Cluster hash tag):
--   <p>e:<id>    one entry: a hash of "doc" (the immutable part, JSON written by Python) and the
--                fields that change: status, due_at, updated_at, replays, error_code,
--                error_message, lease_owner, lease_until, created_at, and "msg": the id of its
--                message in <p>ready while it is there
--   <p>due       the delayed set: pending entries not yet handed to the stream, by due_at
--   <p>ready     the ready stream: one message {id = <entry id>} per due entry, delivered by the
--                consumer group "replayers" (consumer = the claiming worker, its pending entries
--                list = the entries that worker holds)
--   <p>leased    pending entries under a lease, scored by lease_until (an ended lease stays here,
--                with its owner, until another worker claims the entry, as the protocol says)
--   <p>pending   pending entries scored by created_at (listing)
--   <p>failed    the failed set, scored by created_at (listing, review)
-- Times are the callers' (epoch seconds as %.17g strings); the server clock is never read: an
-- entry enters the stream when a caller's `now` reaches its due time, and a dead worker's
-- message is taken over (XCLAIM, min-idle-time 0) when a caller's `now` passes its lease_until,
-- never by the group's idle time.

local P = KEYS[1]
local S = P .. 'ready'
local G = 'replayers'
local op = ARGV[1]

local function fmt(x)
  return string.format('%.17g', x)
end

local function ekey(id)
  return P .. 'e:' .. id
end

local function unstream(id)
  -- Take the entry's message out of the stream: acknowledged (off its holder's pending entries
  -- list) and deleted. A consumer left with nothing pending is removed from the group.
  local msg = redis.call('HGET', ekey(id), 'msg')
  if not msg then return end
  redis.call('HDEL', ekey(id), 'msg')
  local holder = redis.pcall('XPENDING', S, G, msg, msg, 1)
  if type(holder) ~= 'table' or holder.err then return end -- no stream or group: nothing to ack
  redis.call('XACK', S, G, msg)
  redis.call('XDEL', S, msg)
  if holder[1] then
    local consumer = holder[1][2]
    if #redis.call('XPENDING', S, G, '-', '+', 1, consumer) == 0 then
      redis.call('XGROUP', 'DELCONSUMER', S, G, consumer)
    end
  end
end

local function unindex(id)
  redis.call('ZREM', P .. 'due', id)
  redis.call('ZREM', P .. 'leased', id)
  redis.call('ZREM', P .. 'pending', id)
  redis.call('ZREM', P .. 'failed', id)
end

local function held(id, owner)
  -- owner "" = anyone (an operator's decision)
  local current = redis.call('HMGET', ekey(id), 'status', 'lease_owner')
  if not current[1] then return false end
  if owner ~= '' and current[2] ~= owner then return false end
  return true
end

local function release_to_due(id)
  unstream(id)
  local fields = redis.call('HMGET', ekey(id), 'due_at', 'created_at')
  redis.call('HDEL', ekey(id), 'lease_owner', 'lease_until')
  redis.call('ZREM', P .. 'leased', id)
  redis.call('ZREM', P .. 'failed', id)
  redis.call('ZADD', P .. 'due', fields[1], id)
  redis.call('ZADD', P .. 'pending', fields[2], id)
end

if op == 'add' then
  -- ARGV: id, doc, created_at, due_at, updated_at, status, replays, error_code, error_message,
  --       lease_owner ("" = none), lease_until ("" = none)
  local id = ARGV[2]
  local key = ekey(id)
  if redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('HSET', key, 'doc', ARGV[3], 'created_at', ARGV[4], 'due_at', ARGV[5],
    'updated_at', ARGV[6], 'status', ARGV[7], 'replays', ARGV[8], 'error_code', ARGV[9],
    'error_message', ARGV[10])
  if ARGV[7] == 'failed' then
    redis.call('ZADD', P .. 'failed', ARGV[4], id)
    return 1
  end
  redis.call('ZADD', P .. 'pending', ARGV[4], id)
  if ARGV[11] ~= '' then
    redis.call('HSET', key, 'lease_owner', ARGV[11], 'lease_until', ARGV[12])
    redis.call('ZADD', P .. 'leased', ARGV[12], id)
  else
    redis.call('ZADD', P .. 'due', ARGV[5], id)
  end
  return 1
end

if op == 'claim' then
  -- ARGV: owner, now, lease_until, limit, then only these ids (none = any)
  local owner, now, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
  local lease_until = ARGV[4]
  if limit <= 0 then return {} end
  local made = redis.pcall('XGROUP', 'CREATE', S, G, '0', 'MKSTREAM')
  if type(made) == 'table' and made.err and not string.find(made.err, 'BUSYGROUP', 1, true) then
    return made
  end
  local rows = {}
  local function lease(id, due_at, created_at)
    redis.call('HSET', ekey(id), 'lease_owner', owner, 'lease_until', lease_until)
    redis.call('ZREM', P .. 'due', id)
    redis.call('ZADD', P .. 'leased', lease_until, id)
    rows[#rows + 1] = {tonumber(due_at), tonumber(created_at), id}
  end
  local function claimable(id)
    -- due_at, created_at when the entry is pending, due and not under a running lease
    local f = redis.call('HMGET', ekey(id), 'due_at', 'created_at', 'status', 'lease_until')
    if f[1] and f[3] == 'pending' and tonumber(f[1]) <= now and (not f[4] or tonumber(f[4]) <= now) then
      return f[1], f[2]
    end
    return nil
  end
  local function take_over(id)
    -- The entry's message (if any) moves to `owner`'s pending entries list; one that was never
    -- delivered (still waiting in the stream) leaves the stream: the lease in the hash holds it.
    local msg = redis.call('HGET', ekey(id), 'msg')
    if msg and #redis.call('XCLAIM', S, G, owner, 0, msg) == 0 then
      redis.call('XDEL', S, msg)
      redis.call('HDEL', ekey(id), 'msg')
    end
  end

  if #ARGV > 5 then
    -- Only these entries (`tether dlq replay --id`), wherever they wait.
    local candidates, seen = {}, {}
    for i = 6, #ARGV do
      local id = ARGV[i]
      local due_at, created_at = claimable(id)
      if due_at and not seen[id] then
        seen[id] = true
        candidates[#candidates + 1] = {tonumber(due_at), tonumber(created_at), id}
      end
    end
    table.sort(candidates, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      if a[2] ~= b[2] then return a[2] < b[2] end
      return a[3] < b[3]
    end)
    for i = 1, math.min(limit, #candidates) do
      local row = candidates[i]
      take_over(row[3])
      lease(row[3], row[1], row[2])
    end
  else
    -- 1. Dead workers: messages whose lease ended on the callers' time line (lease_until <= now)
    --    are XCLAIMed from their holder's pending entries list (min-idle-time 0: never the
    --    server's idle clock).
    local ended = redis.call('ZRANGEBYSCORE', P .. 'leased', '-inf', fmt(now), 'LIMIT', 0, limit)
    for _, id in ipairs(ended) do
      local due_at, created_at = claimable(id)
      if due_at then
        take_over(id)
        lease(id, due_at, created_at)
      end
    end
    local room = limit - #rows
    -- 2. Promote due entries from the delayed set into the stream, oldest due first: the first
    --    `room` by due time plus every entry tied with the last one (created_at breaks ties).
    if room > 0 then
      local first = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', fmt(now), 'WITHSCORES', 'LIMIT', 0, room)
      local ready, seen = {}, {}
      local function stage(id)
        if seen[id] then return end
        seen[id] = true
        local f = redis.call('HMGET', ekey(id), 'due_at', 'created_at')
        if f[1] then ready[#ready + 1] = {tonumber(f[1]), tonumber(f[2]), id} end
      end
      for i = 1, #first, 2 do stage(first[i]) end
      if #first == 2 * room then
        local last = first[#first]
        for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due', last, last)) do stage(id) end
      end
      table.sort(ready, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        if a[2] ~= b[2] then return a[2] < b[2] end
        return a[3] < b[3]
      end)
      for _, row in ipairs(ready) do
        local id = row[3]
        redis.call('ZREM', P .. 'due', id)
        redis.call('HSET', ekey(id), 'msg', redis.call('XADD', S, '*', 'id', id))
      end
    end
    -- 3. Read new messages as consumer `owner` of the group (non-blocking XREADGROUP).
    while room > 0 do
      local got = redis.call('XREADGROUP', 'GROUP', G, owner, 'COUNT', room, 'STREAMS', S, '>')
      if not got or #got[1][2] == 0 then break end
      for _, message in ipairs(got[1][2]) do
        local msg, fields = message[1], message[2]
        local id = fields[2]
        local f = redis.call('HMGET', ekey(id), 'due_at', 'created_at', 'status', 'msg')
        if f[4] ~= msg or f[3] ~= 'pending' then
          -- a stale message (its entry was removed or moved): drop it
          redis.call('XACK', S, G, msg)
          redis.call('XDEL', S, msg)
        elseif tonumber(f[1]) > now then
          -- promoted by a worker whose clock runs ahead: back to the delayed set
          unstream(id)
          redis.call('ZADD', P .. 'due', f[1], id)
        else
          lease(id, f[1], f[2])
          room = room - 1
        end
      end
    end
  end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  local out = {}
  for _, row in ipairs(rows) do out[#out + 1] = redis.call('HGETALL', ekey(row[3])) end
  return out
end

if op == 'complete' then
  -- ARGV: id, owner
  local id = ARGV[2]
  if ARGV[3] == '' or not held(id, ARGV[3]) then return 0 end
  unstream(id)
  redis.call('DEL', ekey(id))
  unindex(id)
  return 1
end

if op == 'reschedule' then
  -- ARGV: id, owner, due_at, replays, error_code, error_message, now
  local id = ARGV[2]
  if ARGV[3] == '' or not held(id, ARGV[3]) then return 0 end
  if redis.call('HGET', ekey(id), 'status') ~= 'pending' then return 0 end
  redis.call('HSET', ekey(id), 'due_at', ARGV[4], 'replays', ARGV[5], 'error_code', ARGV[6],
    'error_message', ARGV[7], 'updated_at', ARGV[8])
  release_to_due(id)
  return 1
end

if op == 'fail' then
  -- ARGV: id, owner ("" = whoever holds it), replays, error_code, error_message, now
  local id = ARGV[2]
  if not held(id, ARGV[3]) then return 0 end
  redis.call('HSET', ekey(id), 'status', 'failed', 'replays', ARGV[4], 'error_code', ARGV[5],
    'error_message', ARGV[6], 'updated_at', ARGV[7])
  redis.call('HDEL', ekey(id), 'lease_owner', 'lease_until')
  unstream(id)
  local created = redis.call('HGET', ekey(id), 'created_at')
  unindex(id)
  redis.call('ZADD', P .. 'failed', created, id)
  return 1
end

if op == 'release' then
  -- ARGV: id, owner
  local id = ARGV[2]
  if ARGV[3] == '' or not held(id, ARGV[3]) then return 0 end
  if redis.call('HGET', ekey(id), 'status') == 'pending' then
    release_to_due(id)
  else
    redis.call('HDEL', ekey(id), 'lease_owner', 'lease_until')
  end
  return 1
end

if op == 'requeue' then
  -- ARGV: id, due_at, now, reset_replays (1/0)
  local id = ARGV[2]
  if redis.call('EXISTS', ekey(id)) == 0 then return 0 end
  redis.call('HSET', ekey(id), 'status', 'pending', 'due_at', ARGV[3], 'updated_at', ARGV[4])
  if ARGV[5] == '1' then redis.call('HSET', ekey(id), 'replays', '0') end
  release_to_due(id)
  return 1
end

if op == 'get' then
  return redis.call('HGETALL', ekey(ARGV[2]))
end

local function index_for(status)
  if status == 'pending' then return {P .. 'pending'} end
  if status == 'failed' then return {P .. 'failed'} end
  return {P .. 'pending', P .. 'failed'}
end

if op == 'list' then
  -- ARGV: status ("" = both), limit (-1 = all), offset. Oldest first: (created_at, id).
  local limit, offset = tonumber(ARGV[3]), tonumber(ARGV[4])
  local rows = {}
  for _, index in ipairs(index_for(ARGV[2])) do
    local ids = redis.call('ZRANGE', index, 0, -1, 'WITHSCORES')
    for i = 1, #ids, 2 do rows[#rows + 1] = {tonumber(ids[i + 1]), ids[i]} end
  end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local out = {}
  local last = #rows
  if limit >= 0 then last = math.min(#rows, offset + limit) end
  for i = offset + 1, last do
    out[#out + 1] = redis.call('HGETALL', ekey(rows[i][2]))
  end
  return out
end

if op == 'purge' then
  -- ARGV: status ("" = all)
  local removed = 0
  for _, index in ipairs(index_for(ARGV[2])) do
    for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
      unstream(id)
      redis.call('DEL', ekey(id))
      unindex(id)
      removed = removed + 1
    end
  end
  return removed
end

if op == 'counts' then
  return {
    redis.call('ZCARD', P .. 'pending'),
    redis.call('ZCARD', P .. 'failed'),
    redis.call('ZCARD', P .. 'leased'),
  }
end

return redis.error_reply('tether dlq script: unknown op ' .. tostring(op))
