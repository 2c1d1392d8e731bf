-- Applies one prepared group of batches for one trading date, atomically. Order-independent: the
-- result does not depend on the order groups arrive in, nor on how many analyzers apply them.
-- KEYS: 1 applied batch ids, 2 market hash, 3 window trades zset, 4 previous closes,
--       5 symbols without a previous close, 6 gappers, 7 gainers, 8 volume, 9 trades,
--       10 symbol states hash, 11 ledger hash, 12 dead-lettered batches hash
-- ARGV: 1 batch ids (comma-separated; the first names the group), 2 window ms, 3 retention ms,
--       4 aggregate symbols, 5 trade symbols, 6 newest trade time ('' without trades),
--       7 aggregate events, 8 trade events, 9 distinct trade times,
--       10 msgpack [aggregates, trades, window], three flat arrays:
--   aggregates: sym, e, av, c, oe, oav, op (zeros when no bar of the group carried op)
--   trades:     sym, count, notional units, first t
--   window:     t, 'sym|count|units;…' (every trade entry at that time, packed by the analyzer)
--       11 msgpack ledger entries of the batches accounted on this date: id, events, malformed
-- Each symbol's state is read once and written once; each board gets one command per group.
-- Board scores are stored negated so that ZRANGE gives score descending, ties by symbol ascending.
local call, tonumber, argv = redis.call, tonumber, ARGV
-- Everything that can fail on bad input runs before the batch ids are marked applied.
local records = cmsgpack.unpack(argv[10])
local ledger = cmsgpack.unpack(argv[11])

-- Exactly once: when any batch of the group was applied before, nothing is applied and those
-- ids are returned, so the caller can apply the group again without them.
local ids = {}
for id in string.gmatch(argv[1], '[^,]+') do
  ids[#ids + 1] = id
end
-- In chunks, here and below: Lua's unpack stops near 8,000 values, and a group may hold more
-- batches than that with a large prefetch of small batches.
local duplicates = {}
for k = 1, #ids, 2000 do
  local last = math.min(k + 1999, #ids)
  for n, member in ipairs(call('SMISMEMBER', KEYS[1], unpack(ids, k, last))) do
    if member == 1 then
      duplicates[#duplicates + 1] = ids[k + n - 1]
    end
  end
end
if #duplicates > 0 then
  return { 0, duplicates }
end
for k = 1, #ids, 2000 do
  call('SADD', KEYS[1], unpack(ids, k, math.min(k + 1999, #ids)))
end
-- The ledger: the events of the batches accounted on this date are applied, exactly once as the
-- ids above. A copy of one of them counted as dead-lettered before (the publisher resent a batch the
-- broker had taken) was a duplicate, not a loss: that count is taken back.
if #ledger > 0 then
  local appliedEvents, malformedEvents, ledgerIds = 0, 0, {}
  for k = 1, #ledger, 3 do
    ledgerIds[#ledgerIds + 1] = ledger[k]
    appliedEvents = appliedEvents + ledger[k + 1]
    malformedEvents = malformedEvents + ledger[k + 2]
  end
  for k = 1, #ledgerIds, 2000 do
    local last = math.min(k + 1999, #ledgerIds)
    for n, dead in ipairs(call('HMGET', KEYS[12], unpack(ledgerIds, k, last))) do
      if dead then
        local reason, events = string.match(dead, '^(.-)|(%d+)$')
        call('HINCRBY', KEYS[11], 'broker/' .. reason, 0 - tonumber(events))
        call('HDEL', KEYS[12], ledgerIds[k + n - 1])
      end
    end
  end
  call('HINCRBY', KEYS[11], 'applied', appliedEvents)
  if malformedEvents > 0 then
    call('HINCRBY', KEYS[11], 'analyzer/malformed', malformedEvents)
  end
end
local groupId = ids[1]
local windowMs, retentionMs = tonumber(argv[2]), argv[3]
local nAgg, nSym, nTimes = tonumber(argv[4]), tonumber(argv[5]), tonumber(argv[9])

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
  i = i + 4
end

-- The window: its end is the newest trade seen; entries at or before end - window leave it.
local cutoff, gone = nil, {}
if nSym > 0 then
  local tEnd = tonumber(call('HGET', KEYS[2], 'tEnd'))
  local newEnd = tonumber(argv[6])
  local moved = tEnd == nil or newEnd > tEnd
  if moved then
    call('HSET', KEYS[2], 'tEnd', argv[6])
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

local prevs = {}
for k = 1, #aggSyms, 2000 do
  local values = call('HMGET', KEYS[4], unpack(aggSyms, k, math.min(k + 1999, #aggSyms)))
  for n = 1, #values do
    prevs[aggSyms[k + n - 1]] = tonumber(values[n])
  end
end

local volume, gappers, gainers, tradesBoard, tradesGone, noPrev = {}, {}, {}, {}, {}, {}
local changed = 0

-- A symbol's state is one msgpack array: e, av, c, oe, oav, op, tn, tv, tf, wn, wv (false when
-- unknown), a field of the states hash. One HMGET and one HSET per chunk of symbols: a command
-- per symbol made the whole script cost Redis about 1.5 times as much.
local E, AV, C, OE, OAV, OP, TN, TV, TF, WN, WV = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11

local function applyBar(sym, a, st)
  local e, av, c, oe, oav, op = aggRec[a + 1], aggRec[a + 2], aggRec[a + 3], aggRec[a + 4], aggRec[a + 5], aggRec[a + 6]
  local dirty = false
  if later(e, av, st[E] or nil, st[AV] or nil) then
    st[E], st[AV], st[C], dirty = e, av, c, true
  end
  if op > 0 and later(oe, oav, st[OE] or nil, st[OAV] or nil) then
    st[OE], st[OAV], st[OP], dirty = oe, oav, op, true
  end
  if not dirty then
    return false
  end
  changed = changed + 1
  local price, open = st[C], st[OP]
  volume[#volume + 1], volume[#volume + 2] = 0 - st[AV], sym
  local prev = prevs[sym]
  if prev ~= nil and prev > 0 then
    gappers[#gappers + 1], gappers[#gappers + 2] = 0 - (price - prev) / prev * 100, sym
  else
    noPrev[#noPrev + 1] = sym
  end
  if open and open > 0 then
    gainers[#gainers + 1], gainers[#gainers + 2] = 0 - (price - open) / open * 100, sym
  end
  return true
end

-- Per symbol, the group's trades inside the window, read from the window entries: only needed
-- when part of a group is already outside the window (late data), so built on first use.
local lateWindow = nil
local function inWindow(sym)
  if lateWindow == nil then
    lateWindow = {}
    local j = 1
    for _ = 1, nTimes do
      if windowRec[j] > cutoff then
        for s, n, u in string.gmatch(windowRec[j + 1], '([^|;]+)|(%d+)|(%d+)') do
          local w = lateWindow[s]
          if w == nil then
            lateWindow[s] = { tonumber(n), tonumber(u) }
          else
            w[1], w[2] = w[1] + tonumber(n), w[2] + tonumber(u)
          end
        end
      end
      j = j + 2
    end
  end
  return lateWindow[sym]
end

local function applyTrades(sym, t, d, st)
  local wn, wv = st[WN] or 0, st[WV] or 0
  if t then
    local count, units, first = tradeRec[t + 1], tradeRec[t + 2], tradeRec[t + 3]
    st[TN], st[TV] = (st[TN] or 0) + count, (st[TV] or 0) + units
    if not st[TF] or first < st[TF] then
      st[TF] = first
    end
    if first > cutoff then
      -- Every trade of the group is inside the window: the totals are the window's.
      wn, wv = wn + count, wv + units
    else
      local w = inWindow(sym)
      if w then
        wn, wv = wn + w[1], wv + w[2]
      end
    end
  end
  if d then
    wn, wv = wn - d[1], wv - d[2]
  end
  st[WN], st[WV] = wn, wv
  if wn > 0 then
    tradesBoard[#tradesBoard + 1], tradesBoard[#tradesBoard + 2] = 0 - wn, sym
  else
    tradesGone[#tradesGone + 1] = sym
  end
end

for k = 1, #order, 2000 do
  local last = math.min(k + 1999, #order)
  local values = call('HMGET', KEYS[10], unpack(order, k, last))
  local writes = {}
  for n = k, last do
    local sym = order[n]
    local raw = values[n - k + 1]
    local st = raw and cmsgpack.unpack(raw) or { false, false, false, false, false, false, false, false, false, false, false }
    local a, t, d = aggs[sym], trades[sym], gone[sym]
    local dirty = false
    if a then
      dirty = applyBar(sym, a, st)
    end
    if t or d then
      applyTrades(sym, t, d, st)
      dirty = true
    end
    if dirty then
      writes[#writes + 1], writes[#writes + 2] = sym, cmsgpack.pack(st)
    end
  end
  if #writes > 0 then
    call('HSET', KEYS[10], unpack(writes))
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
call('HINCRBY', KEYS[2], 'appliedAggregates', argv[7])
call('HINCRBY', KEYS[2], 'appliedTrades', argv[8])
for k = 1, 12 do
  call('PEXPIRE', KEYS[k], retentionMs)
end
return { 1, changed }
