-- Counts one dead-lettered batch in its date's ledger, exactly once, and only when it was lost: a
-- batch the analyzers applied (another copy of it, resent by the publisher) lost nothing.
-- KEYS: 1 applied batch ids, 2 ledger hash, 3 dead-lettered batches hash
-- ARGV: 1 batch id, 2 reason (RabbitMQ's: expired, maxlen, ...), 3 events, 4 retention ms
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 0
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2] .. '|' .. ARGV[3]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[2], 'broker/' .. ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
