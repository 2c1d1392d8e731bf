-- Recomputes the momentum board at the current window end: for every symbol with trades in the
-- window, N_w / (N_d * W / T_d), W the window in seconds and T_d the seconds from the symbol's
-- first trade to the window end; symbols with T_d below the minimum history are left out.
-- KEYS: 1 market hash, 2 trades board, 3 momentum board, 4 symbol states hash
-- ARGV: 1 window ms, 2 minimum history ms, 3 retention ms,
--       4 'read' to return the (negated score, symbol) pairs instead of storing them
local readOnly = ARGV[4] == 'read'
local tEnd = tonumber(redis.call('HGET', KEYS[1], 'tEnd'))
if not readOnly then
  redis.call('DEL', KEYS[3])
end
if tEnd == nil then
  return readOnly and {} or 0
end
local windowSec, minHistoryMs = tonumber(ARGV[1]) / 1000, tonumber(ARGV[2])
local args = {}
local syms = redis.call('ZRANGE', KEYS[2], 0, -1)
for k = 1, #syms, 2000 do
  local last = math.min(k + 1999, #syms)
  local values = redis.call('HMGET', KEYS[4], unpack(syms, k, last))
  for n = k, last do
    local raw = values[n - k + 1]
    if raw then
      -- The state array of lua/apply.lua: tv, tf, wv at 8, 9, 11.
      local st = cmsgpack.unpack(raw)
      local tv, tf, wv = st[8], st[9], st[11]
      if wv and tv and tf and tv > 0 and tEnd - tf >= minHistoryMs then
        local td = (tEnd - tf) / 1000
        args[#args + 1] = 0 - wv / (tv * windowSec / td)
        args[#args + 1] = syms[n]
      end
    end
  end
end
if readOnly then
  -- Scores as strings: a Lua number in a reply would be truncated to an integer.
  for k = 1, #args, 2 do
    args[k] = string.format('%.17g', args[k])
  end
  return args
end
for k = 1, #args, 2000 do
  redis.call('ZADD', KEYS[3], unpack(args, k, math.min(k + 1999, #args)))
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return #args / 2
