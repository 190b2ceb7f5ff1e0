-- The circuit breaker state machine: a port of tether.state._algorithms.breaker_acquire /
-- breaker_record / breaker_force / breaker_status, one atomic script per store operation.
--
-- KEYS[1]  the circuit's record: the JSON of _algorithms.BreakerState (BreakerState.from_json
--          reads it), written with %.17g numbers because cjson.encode keeps only 14 digits
-- ARGV[1]  one string, fields separated by "|": op, now, keep (seconds added to a closed
--          circuit's expiry), the BreakerConfig (mode, failures, window, failure_rate, min_calls, window_calls or "", open_for,
--          half_open_calls, close_after, half_open_timeout), then per op:
--   acquire: (nothing)
--   record:  granted (1/0), probe (1/0), generation, ticket, outcome
--   force:   target ("isolated" | "closed")
--   status:  (nothing; read-only)
-- Answer (one "|"-separated string): granted, probe, generation, ticket, retry_after ("" = none),
-- then the snapshot (state, failures, calls, opened_at, half_open_at, probes, probe_successes;
-- "" = none), then the number of transitions and (from, to, reason, at) for each.

-- EPSILON, fmt, ARGS and reply come from _prelude.lua.

local function opt(x)
  if x == nil then return '' end
  return fmt(x)
end

local op = ARGS[1]
local now = tonumber(ARGS[2])
local keep = tonumber(ARGS[3])
local cfg = {
  mode = ARGS[4],
  failures = tonumber(ARGS[5]),
  window = tonumber(ARGS[6]),
  failure_rate = tonumber(ARGS[7]),
  min_calls = tonumber(ARGS[8]),
  window_calls = tonumber(ARGS[9]),  -- nil when ""
  open_for = tonumber(ARGS[10]),
  half_open_calls = tonumber(ARGS[11]),
  close_after = tonumber(ARGS[12]),
  half_open_timeout = tonumber(ARGS[13]),
}
local REST = 14

-- --- the record -------------------------------------------------------------------------------

local function nullable(v)
  if v == nil or v == cjson.null then return nil end
  return tonumber(v)
end

local function load()
  local s = {
    state = 'closed', generation = 0, run = {}, recent = {}, buckets = {},
    opened_at = nil, half_open_at = nil, probes = {}, probe_successes = 0, next_ticket = 1,
  }
  local raw = redis.call('GET', KEYS[1])
  if not raw then return s end
  local d = cjson.decode(raw)
  s.state = d.state or 'closed'
  s.generation = tonumber(d.generation) or 0
  for i, t in ipairs(d.run or {}) do s.run[i] = tonumber(t) end
  for i, x in ipairs(d.recent or {}) do s.recent[i] = tonumber(x) end
  for i, b in ipairs(d.buckets or {}) do
    s.buckets[i] = {tonumber(b[1]), tonumber(b[2]), tonumber(b[3])}
  end
  s.opened_at = nullable(d.opened_at)
  s.half_open_at = nullable(d.half_open_at)
  for i, p in ipairs(d.probes or {}) do s.probes[i] = {tonumber(p[1]), tonumber(p[2])} end
  s.probe_successes = tonumber(d.probe_successes) or 0
  s.next_ticket = tonumber(d.next_ticket) or 1
  return s
end

local function list(items, each)
  local out = {}
  for i, x in ipairs(items) do out[i] = each(x) end
  return '[' .. table.concat(out, ',') .. ']'
end

local function jnum(x)
  if x == nil then return 'null' end
  return fmt(x)
end

local function save(s)
  local json = '{"state":"' .. s.state .. '"'
    .. ',"generation":' .. string.format('%d', s.generation)
    .. ',"run":' .. list(s.run, fmt)
    .. ',"recent":' .. list(s.recent, function(x) return string.format('%d', x) end)
    .. ',"buckets":' .. list(s.buckets, function(b) return '[' .. fmt(b[1]) .. ',' .. fmt(b[2]) .. ',' .. fmt(b[3]) .. ']' end)
    .. ',"opened_at":' .. jnum(s.opened_at)
    .. ',"half_open_at":' .. jnum(s.half_open_at)
    .. ',"probes":' .. list(s.probes, function(p) return '[' .. string.format('%d', p[1]) .. ',' .. fmt(p[2]) .. ']' end)
    .. ',"probe_successes":' .. string.format('%d', s.probe_successes)
    .. ',"next_ticket":' .. string.format('%d', s.next_ticket)
    .. '}'
  redis.call('SET', KEYS[1], json)
  -- An open, half-open or isolated circuit stays until it closes; a closed one whose counts
  -- would all have left the window disappears (a count window never empties: keep it).
  if s.state == 'closed' and #s.recent == 0 then
    redis.call('PEXPIRE', KEYS[1], math.ceil((2 * cfg.window + keep) * 1000))
  else
    redis.call('PERSIST', KEYS[1])
  end
end

-- --- the state machine (same names as _algorithms) ---------------------------------------------

local function bucket_width()
  return cfg.window / 60.0
end

local function prune_window(s)
  local horizon = now - cfg.window
  if cfg.mode == 'consecutive' then
    local kept = {}
    for _, t in ipairs(s.run) do
      if t > horizon then kept[#kept + 1] = t end
    end
    s.run = kept
  elseif cfg.window_calls == nil then
    local width = bucket_width()
    local kept = {}
    for _, b in ipairs(s.buckets) do
      if b[1] + width > horizon then kept[#kept + 1] = b end
    end
    s.buckets = kept
  end
end

local function counts(s)
  if cfg.mode == 'consecutive' then
    return #s.run, #s.run
  end
  if cfg.window_calls ~= nil then
    local failures = 0
    for _, x in ipairs(s.recent) do failures = failures + x end
    return failures, #s.recent
  end
  local failures, calls = 0, 0
  for _, b in ipairs(s.buckets) do
    failures = failures + b[3]
    calls = calls + b[2]
  end
  return math.floor(failures), math.floor(calls)
end

local function clear_counts(s)
  s.run, s.recent, s.buckets = {}, {}, {}
end

local function oldest_probe(s)
  local oldest = nil
  for _, p in ipairs(s.probes) do
    if oldest == nil or p[2] < oldest then oldest = p[2] end
  end
  return oldest
end

local function move(s, to, reason, out)
  out[#out + 1] = {s.state, to, reason, now}
  s.generation = s.generation + 1
  s.probes = {}
  s.probe_successes = 0
  if to == 'open' then
    s.opened_at = now
    s.half_open_at = now + cfg.open_for
    clear_counts(s)
  elseif to == 'isolated' then
    s.opened_at = now
    s.half_open_at = nil
    clear_counts(s)
  elseif to == 'half_open' then
    s.half_open_at = nil
  else
    s.opened_at = nil
    s.half_open_at = nil
    clear_counts(s)
  end
  s.state = to
end

local function advance(s, out)
  if s.state == 'open' and s.half_open_at ~= nil and now + EPSILON >= s.half_open_at then
    move(s, 'half_open', 'open_for_elapsed', out)
  end
  if s.state == 'half_open' and #s.probes > 0 then
    if now + EPSILON >= oldest_probe(s) + cfg.half_open_timeout then
      move(s, 'open', 'half_open_timeout', out)
    end
  end
end

local function record_closed(s, outcome, out)
  if outcome == 'ignored' then return end
  local failed = outcome == 'failure'
  if cfg.mode == 'consecutive' then
    if not failed then
      s.run = {}
      return
    end
    s.run[#s.run + 1] = now
    if #s.run >= cfg.failures then
      move(s, 'open', 'failures', out)
    end
    return
  end
  if cfg.window_calls ~= nil then
    if failed then s.recent[#s.recent + 1] = 1 else s.recent[#s.recent + 1] = 0 end
    local extra = #s.recent - cfg.window_calls
    if extra > 0 then
      local kept = {}
      for i = extra + 1, #s.recent do kept[#kept + 1] = s.recent[i] end
      s.recent = kept
    end
  else
    local width = bucket_width()
    local start = math.floor(now / width) * width
    local bucket = s.buckets[#s.buckets]
    if bucket == nil or math.abs(bucket[1] - start) > EPSILON then
      bucket = {start, 0.0, 0.0}
      s.buckets[#s.buckets + 1] = bucket
    end
    bucket[2] = bucket[2] + 1
    if failed then bucket[3] = bucket[3] + 1 end
  end
  if failed then
    local failures, calls = counts(s)
    if calls >= cfg.min_calls and failures >= cfg.failure_rate * calls - EPSILON then
      move(s, 'open', 'failure_rate', out)
    end
  end
end

-- --- the answer ---------------------------------------------------------------------------------

local function answer(s, granted, probe, ticket, retry_after, out)
  local failures, calls = counts(s)
  local opened_at, half_open_at = nil, nil
  if s.state == 'open' or s.state == 'half_open' or s.state == 'isolated' then
    opened_at = s.opened_at
  end
  if s.state == 'open' then half_open_at = s.half_open_at end
  local fields = {
    granted, probe, s.generation, ticket, opt(retry_after),
    s.state, failures, calls, opt(opened_at), opt(half_open_at), #s.probes, s.probe_successes,
    #out,
  }
  for _, t in ipairs(out) do
    fields[#fields + 1] = t[1]
    fields[#fields + 1] = t[2]
    fields[#fields + 1] = t[3]
    fields[#fields + 1] = fmt(t[4])
  end
  return reply(fields)
end

local s = load()
local out = {}

if op == 'acquire' then
  advance(s, out)
  prune_window(s)
  local granted, probe, ticket, retry_after = 0, 0, 0, nil
  if s.state == 'closed' then
    granted = 1
  elseif s.state == 'half_open' then
    if #s.probes < cfg.half_open_calls then
      granted, probe = 1, 1
      ticket = s.next_ticket
      s.next_ticket = s.next_ticket + 1
      s.probes[#s.probes + 1] = {ticket, now}
    else
      local stuck_until = oldest_probe(s) + cfg.half_open_timeout - now
      retry_after = math.max(0.0, math.min(cfg.open_for, stuck_until))
    end
  elseif s.state == 'open' then
    retry_after = math.max(0.0, s.half_open_at - now)
  end
  save(s)
  return answer(s, granted, probe, ticket, retry_after, out)
end

if op == 'record' then
  local granted = ARGS[REST] == '1'
  local probe = ARGS[REST + 1] == '1'
  local generation = tonumber(ARGS[REST + 2])
  local ticket = tonumber(ARGS[REST + 3])
  local outcome = ARGS[REST + 4]
  if granted and generation == s.generation then
    local index = nil
    for i, p in ipairs(s.probes) do
      if p[1] == ticket then index = i end
    end
    if probe and s.state == 'half_open' and index ~= nil then
      table.remove(s.probes, index)
      if outcome == 'success' then
        s.probe_successes = s.probe_successes + 1
        if s.probe_successes >= cfg.close_after then
          move(s, 'closed', 'probes_succeeded', out)
        end
      elseif outcome == 'failure' then
        move(s, 'open', 'probe_failed', out)
      end
      save(s)
    elseif not probe and s.state == 'closed' then
      prune_window(s)
      record_closed(s, outcome, out)
      save(s)
    end
  end
  return answer(s, 0, 0, 0, nil, out)
end

if op == 'force' then
  local target = ARGS[REST]
  if s.state ~= target then
    local reason = 'reset'
    if target == 'isolated' then reason = 'isolated' end
    move(s, target, reason, out)
  elseif target == 'closed' then
    clear_counts(s)
  end
  save(s)
  return answer(s, 0, 0, 0, nil, out)
end

if op == 'status' then
  advance(s, out)
  prune_window(s)
  return answer(s, 0, 0, 0, nil, {})
end

return redis.error_reply('tether breaker script: unknown op ' .. tostring(op))
