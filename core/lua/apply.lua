-- Applies one prepared group of batches for one trading date, atomically. Order-independent: the
-- result does not depend on the order groups arrive in, nor on how many analyzers apply them.
-- KEYS: 1 applied batch ids, 2 market hash, 3 window trades zset, 4 previous closes,
--       5 symbols without a previous close, 6 gappers, 7 gainers, 8 volume, 9 trades
-- ARGV: 1 batch ids (comma-separated; the first names the group), 2 symbol key prefix,
--       3 window ms, 4 retention ms, 5 aggregate symbols, 6 trade symbols, 7 newest trade time
--       ('' without trades), 8 aggregate events, 9 trade events, 10 distinct trade times,
--       11 msgpack [aggregates, trades, window], three flat arrays:
--   aggregates: sym, e, av, c, oe, oav, op (zeros when no bar of the group carried op)
--   trades:     sym, count, notional units, first t, entry count, then entries (t, count, units)
--   window:     t, 'sym|count|units;…' (every trade entry at that time, packed by the analyzer)
-- Each symbol's hash is read once and written once; each board gets one command per group.
-- Board scores are stored negated so that ZRANGE gives score descending, ties by symbol ascending.
local call, tonumber, argv = redis.call, tonumber, ARGV
-- Everything that can fail on bad input runs before the batch ids are marked applied.
local records = cmsgpack.unpack(argv[11])

-- Exactly once: when any batch of the group was applied before, nothing is applied and those
-- ids are returned, so the caller can apply the group again without them.
local ids = {}
for id in string.gmatch(argv[1], '[^,]+') do
  ids[#ids + 1] = id
end
local duplicates = {}
for k, member in ipairs(call('SMISMEMBER', KEYS[1], unpack(ids))) do
  if member == 1 then
    duplicates[#duplicates + 1] = ids[k]
  end
end
if #duplicates > 0 then
  return { 0, duplicates }
end
call('SADD', KEYS[1], unpack(ids))
local groupId, prefix = ids[1], argv[2]
local windowMs, retentionMs = tonumber(argv[3]), argv[4]
local nAgg, nSym, nTimes = tonumber(argv[5]), tonumber(argv[6]), tonumber(argv[10])

local function later(e1, av1, e2, av2)
  return e2 == nil or e1 > e2 or (e1 == e2 and av1 > av2)
end

-- Index the records by symbol.
local aggRec, tradeRec, windowRec = records[1], records[2], records[3]
local aggs, trades, order, seen = {}, {}, {}, {}
local function touch(sym)
  if not seen[sym] then
    seen[sym] = true
    order[#order + 1] = sym
  end
end
local aggSyms = {}
local i = 1
for _ = 1, nAgg do
  local sym = aggRec[i]
  aggs[sym] = i
  aggSyms[#aggSyms + 1] = sym
  touch(sym)
  i = i + 7
end
i = 1
for _ = 1, nSym do
  local sym = tradeRec[i]
  trades[sym] = i
  touch(sym)
  i = i + 5 + 3 * tradeRec[i + 4]
end

-- The window: its end is the newest trade seen; entries at or before end - window leave it.
local cutoff, gone = nil, {}
if nSym > 0 then
  local tEnd = tonumber(call('HGET', KEYS[2], 'tEnd'))
  local newEnd = tonumber(argv[7])
  local moved = tEnd == nil or newEnd > tEnd
  if moved then
    call('HSET', KEYS[2], 'tEnd', argv[7])
  else
    newEnd = tEnd
  end
  cutoff = newEnd - windowMs
  if moved then
    for _, m in ipairs(call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff)) do
      for sym, n, u in string.gmatch(string.match(m, '^[^#]*'), '([^|;]+)|(%d+)|(%d+)') do
        local d = gone[sym]
        if d == nil then
          gone[sym] = { tonumber(n), tonumber(u) }
          touch(sym)
        else
          d[1], d[2] = d[1] + tonumber(n), d[2] + tonumber(u)
        end
      end
    end
    call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
  end
  local members = {}
  local j = 1
  for k = 1, nTimes do
    if windowRec[j] > cutoff then
      members[#members + 1] = windowRec[j]
      members[#members + 1] = windowRec[j + 1] .. '#' .. groupId .. '#' .. k
    end
    j = j + 2
  end
  for k = 1, #members, 2000 do
    call('ZADD', KEYS[3], unpack(members, k, math.min(k + 1999, #members)))
  end
end

-- In chunks: Lua's unpack stops near 8,000 values.
local prevs = {}
for k = 1, #aggSyms, 2000 do
  local values = call('HMGET', KEYS[4], unpack(aggSyms, k, math.min(k + 1999, #aggSyms)))
  for n = 1, #values do
    prevs[aggSyms[k + n - 1]] = tonumber(values[n])
  end
end

local volume, gappers, gainers, tradesBoard, tradesGone, noPrev = {}, {}, {}, {}, {}, {}
local changed = 0

local function applyBar(sym, a, cur, set)
  local e, av, c, oe, oav, op = aggRec[a + 1], aggRec[a + 2], aggRec[a + 3], aggRec[a + 4], aggRec[a + 5], aggRec[a + 6]
  local price, vol, open = tonumber(cur[3]), tonumber(cur[2]), tonumber(cur[6])
  local dirty = false
  if later(e, av, tonumber(cur[1]), vol) then
    set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4], set[#set + 5], set[#set + 6] = 'e', e, 'av', av, 'c', c
    price, vol, dirty = c, av, true
  end
  if op > 0 and later(oe, oav, tonumber(cur[4]), tonumber(cur[5])) then
    set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4], set[#set + 5], set[#set + 6] = 'oe', oe, 'oav', oav, 'op', op
    open, dirty = op, true
  end
  if not dirty then
    return
  end
  changed = changed + 1
  volume[#volume + 1], volume[#volume + 2] = 0 - vol, sym
  local prev = prevs[sym]
  if prev ~= nil and prev > 0 then
    gappers[#gappers + 1], gappers[#gappers + 2] = 0 - (price - prev) / prev * 100, sym
  else
    noPrev[#noPrev + 1] = sym
  end
  if open ~= nil and open > 0 then
    gainers[#gainers + 1], gainers[#gainers + 2] = 0 - (price - open) / open * 100, sym
  end
end

-- cur[base + 1 .. base + 5] hold tn, tv, tf, wn, wv.
local function applyTrades(sym, t, d, cur, base, set)
  local wn, wv = tonumber(cur[base + 4]) or 0, tonumber(cur[base + 5]) or 0
  if t then
    local count, units, first = tradeRec[t + 1], tradeRec[t + 2], tradeRec[t + 3]
    set[#set + 1], set[#set + 2] = 'tn', (tonumber(cur[base + 1]) or 0) + count
    set[#set + 1], set[#set + 2] = 'tv', (tonumber(cur[base + 2]) or 0) + units
    local tf = tonumber(cur[base + 3])
    if tf == nil or first < tf then
      set[#set + 1], set[#set + 2] = 'tf', first
    end
    if first > cutoff then
      -- Every trade of the group is inside the window: the totals are the window's.
      wn, wv = wn + count, wv + units
    else
      local j = t + 5
      for _ = 1, tradeRec[t + 4] do
        if tradeRec[j] > cutoff then
          wn, wv = wn + tradeRec[j + 1], wv + tradeRec[j + 2]
        end
        j = j + 3
      end
    end
  end
  if d then
    wn, wv = wn - d[1], wv - d[2]
  end
  set[#set + 1], set[#set + 2], set[#set + 3], set[#set + 4] = 'wn', wn, 'wv', wv
  if wn > 0 then
    tradesBoard[#tradesBoard + 1], tradesBoard[#tradesBoard + 2] = 0 - wn, sym
  else
    tradesGone[#tradesGone + 1] = sym
  end
end

-- Read only the fields a symbol's records need; a key seen without them gets its expiry (again,
-- harmlessly, when it only held the other half).
for _, sym in ipairs(order) do
  local key = prefix .. sym
  local a, t, d = aggs[sym], trades[sym], gone[sym]
  local set = {}
  local cur
  if a and (t or d) then
    cur = call('HMGET', key, 'e', 'av', 'c', 'oe', 'oav', 'op', 'tn', 'tv', 'tf', 'wn', 'wv')
    applyBar(sym, a, cur, set)
    applyTrades(sym, t, d, cur, 6, set)
  elseif a then
    cur = call('HMGET', key, 'e', 'av', 'c', 'oe', 'oav', 'op')
    applyBar(sym, a, cur, set)
  else
    cur = call('HMGET', key, 'tn', 'tv', 'tf', 'wn', 'wv')
    applyTrades(sym, t, d, cur, 0, set)
  end
  if #set > 0 then
    call('HSET', key, unpack(set))
    if cur[1] == false then
      call('PEXPIRE', key, retentionMs)
    end
  end
end

local function each(key, command, args, step)
  for k = 1, #args, step do
    call(command, key, unpack(args, k, math.min(k + step - 1, #args)))
  end
end
each(KEYS[8], 'ZADD', volume, 2000)
each(KEYS[6], 'ZADD', gappers, 2000)
each(KEYS[7], 'ZADD', gainers, 2000)
each(KEYS[9], 'ZADD', tradesBoard, 2000)
each(KEYS[9], 'ZREM', tradesGone, 1000)
each(KEYS[5], 'SADD', noPrev, 1000)
if nSym > 0 then
  changed = changed + 1
end
if changed > 0 then
  call('HINCRBY', KEYS[2], 'version', 1)
end
call('HINCRBY', KEYS[2], 'appliedAggregates', argv[8])
call('HINCRBY', KEYS[2], 'appliedTrades', argv[9])
for k = 1, 9 do
  call('PEXPIRE', KEYS[k], retentionMs)
end
return { 1, changed }
