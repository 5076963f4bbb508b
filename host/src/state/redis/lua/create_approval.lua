-- create_approval(P, id, session, request json, created, expires, keep)
local ak = k('a', ARGV[2])
if redis.call('EXISTS', ak) == 1 then return {'error', 'collision'} end
redis.call('HSET', ak, 'id', ARGV[2], 'session', ARGV[3], 'request', ARGV[4],
  'created', ARGV[5], 'expires', ARGV[6], 'decision', 'pending')
redis.call('PEXPIREAT', ak, ARGV[7])
redis.call('ZADD', P .. 'idx:approvals', ARGV[5], ARGV[2])
sweep('idx:approvals', 'a')
return {'ok'}
