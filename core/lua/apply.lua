-- Applies one prepared batch of one trading date, atomically. Order-independent: the result does
-- not depend on the order batches arrive in, nor on how many analyzers apply them.
-- KEYS: 1 applied batch ids, 2 market hash, 3 window expiry zset, 4 previous closes,
--       5 symbols without a previous close, 6 gappers, 7 gainers, 8 volume, 9 trades
-- ARGV: 1 batch id, 2 symbol key prefix, 3 window ms, 4 retention ms, 5 aggregate count,
--       6 trade symbol count, 7 batch's newest trade time ('' when no trades), then the records:
--   aggregate: sym, e, av, c, oe, oav, op ('' when no bar of the batch carried op)
--   trades:    sym, count, notional units, first t, entry count, then entries (t, count, units)
-- Board scores are stored negated so that ZRANGE gives score descending, ties by symbol ascending.
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  return { 0, 0 }
end
local batchId, prefix = ARGV[1], ARGV[2]
local windowMs, retentionMs = tonumber(ARGV[3]), ARGV[4]
local nAgg, nSym = tonumber(ARGV[5]), tonumber(ARGV[6])
local touched = {}
local changed = 0
local i = 8

local function later(e1, av1, e2, av2)
  return e2 == nil or e1 > e2 or (e1 == e2 and av1 > av2)
end

for _ = 1, nAgg do
  local sym = ARGV[i]
  local key = prefix .. sym
  local e, av, c = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local cur = redis.call('HMGET', key, 'e', 'av', 'c', 'oe', 'oav', 'op')
  local price, volume, open = tonumber(cur[3]), tonumber(cur[2]), tonumber(cur[6])
  local dirty = false
  if later(e, av, tonumber(cur[1]), tonumber(cur[2])) then
    redis.call('HSET', key, 'e', ARGV[i + 1], 'av', ARGV[i + 2], 'c', ARGV[i + 3])
    price, volume, dirty = c, av, true
  end
  if ARGV[i + 6] ~= '' and later(tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(cur[4]), tonumber(cur[5])) then
    redis.call('HSET', key, 'oe', ARGV[i + 4], 'oav', ARGV[i + 5], 'op', ARGV[i + 6])
    open, dirty = tonumber(ARGV[i + 6]), true
  end
  if dirty then
    changed = changed + 1
    touched[sym] = true
    redis.call('ZADD', KEYS[8], 0 - volume, sym)
    local prev = tonumber(redis.call('HGET', KEYS[4], sym))
    if prev ~= nil and prev > 0 then
      redis.call('ZADD', KEYS[6], 0 - (price - prev) / prev * 100, sym)
    else
      redis.call('SADD', KEYS[5], sym)
    end
    if open ~= nil and open > 0 then
      redis.call('ZADD', KEYS[7], 0 - (price - open) / open * 100, sym)
    end
  end
  i = i + 7
end

local tradeSyms = {}
if nSym > 0 then
  local tEnd = tonumber(redis.call('HGET', KEYS[2], 'tEnd'))
  local newEnd = tonumber(ARGV[7])
  if tEnd ~= nil and tEnd > newEnd then
    newEnd = tEnd
  else
    redis.call('HSET', KEYS[2], 'tEnd', ARGV[7])
  end
  local cutoff = newEnd - windowMs
  local members = {}
  for _ = 1, nSym do
    local sym = ARGV[i]
    local key = prefix .. sym
    redis.call('HINCRBY', key, 'tn', ARGV[i + 1])
    redis.call('HINCRBY', key, 'tv', ARGV[i + 2])
    local tf = tonumber(redis.call('HGET', key, 'tf'))
    if tf == nil or tonumber(ARGV[i + 3]) < tf then
      redis.call('HSET', key, 'tf', ARGV[i + 3])
    end
    local entries = tonumber(ARGV[i + 4])
    i = i + 5
    local wn, wv = 0, 0
    for j = 1, entries do
      if tonumber(ARGV[i]) > cutoff then
        wn = wn + tonumber(ARGV[i + 1])
        wv = wv + tonumber(ARGV[i + 2])
        members[#members + 1] = ARGV[i]
        members[#members + 1] = sym .. '|' .. ARGV[i + 1] .. '|' .. ARGV[i + 2] .. '|' .. batchId .. '|' .. j
      end
      i = i + 3
    end
    if wn > 0 then
      redis.call('HINCRBY', key, 'wn', wn)
      redis.call('HINCRBY', key, 'wv', wv)
    end
    touched[sym] = true
    tradeSyms[sym] = true
  end
  for k = 1, #members, 2000 do
    redis.call('ZADD', KEYS[3], unpack(members, k, math.min(k + 1999, #members)))
  end
  -- Trades that left the window (t <= cutoff) come off their symbols' window sums.
  local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff)
  if #gone > 0 then
    local dn, dv = {}, {}
    for _, m in ipairs(gone) do
      local sym, n, u = string.match(m, '^([^|]+)|(%d+)|(%d+)|')
      dn[sym] = (dn[sym] or 0) + tonumber(n)
      dv[sym] = (dv[sym] or 0) + tonumber(u)
    end
    for sym, n in pairs(dn) do
      redis.call('HINCRBY', prefix .. sym, 'wn', 0 - n)
      redis.call('HINCRBY', prefix .. sym, 'wv', 0 - dv[sym])
      tradeSyms[sym] = true
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
  end
  for sym in pairs(tradeSyms) do
    local wn = tonumber(redis.call('HGET', prefix .. sym, 'wn')) or 0
    if wn > 0 then
      redis.call('ZADD', KEYS[9], 0 - wn, sym)
    else
      redis.call('ZREM', KEYS[9], sym)
    end
  end
  changed = changed + 1
end

for sym in pairs(touched) do
  redis.call('PEXPIRE', prefix .. sym, retentionMs)
end
if changed > 0 then
  redis.call('HINCRBY', KEYS[2], 'version', 1)
end
for k = 1, 9 do
  redis.call('PEXPIRE', KEYS[k], retentionMs)
end
return { 1, changed }
