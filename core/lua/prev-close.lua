-- Stores previous closes and (re)ranks on the gappers board every symbol that already has a price.
-- KEYS: 1 previous closes, 2 symbols without a previous close, 3 gappers, 4 symbol states hash
-- ARGV: 1 retention ms, then pairs of symbol, close
for i = 2, #ARGV, 2 do
  local sym, close = ARGV[i], tonumber(ARGV[i + 1])
  redis.call('HSET', KEYS[1], sym, ARGV[i + 1])
  local raw = redis.call('HGET', KEYS[4], sym)
  -- The state array of lua/apply.lua: the price (c) is its third value.
  local price = raw and cmsgpack.unpack(raw)[3] or nil
  if price ~= nil and close > 0 then
    redis.call('ZADD', KEYS[3], 0 - (price - close) / close * 100, sym)
    redis.call('SREM', KEYS[2], sym)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return (#ARGV - 1) / 2
