-- Shared by rate.lua and breaker.lua: prepended to each when it is loaded (Redis scripts
-- cannot import one another).

local EPSILON = 1e-9

local function fmt(x)
  return string.format('%.17g', x)
end

-- The arguments arrive as one string, fields separated by "|" (none of them can hold one): one
-- argument instead of a dozen halves the client's cost of packing the command.
local ARGS = {}
for field in string.gmatch(ARGV[1] .. '|', '([^|]*)|') do
  ARGS[#ARGS + 1] = field
end

-- The answer leaves the same way: one string, fields separated by "|".
local function reply(fields)
  local out = {}
  for i, x in ipairs(fields) do
    if type(x) == 'number' then
      out[i] = fmt(x)
    else
      out[i] = tostring(x)
    end
  end
  return table.concat(out, '|')
end
