-- create_session(P, id, digest, json, role, workflow, created, expires, keep)
local id, digest, wf, keep = ARGV[2], ARGV[3], ARGV[6], ARGV[9]
if redis.call('EXISTS', k('wr', wf)) == 1 then return {'error', 'workflow_revoked'} end
local sk, hk = k('s', id), k('h', digest)
if redis.call('EXISTS', sk) == 1 or redis.call('EXISTS', hk) == 1 then
  return {'error', 'collision'}
end
redis.call('HSET', sk, 'json', ARGV[4], 'role', ARGV[5], 'workflow', wf, 'created', ARGV[7],
  'expires', ARGV[8], 'keep', keep, 'total', '0', 'revoked', '0', 'digest', digest)
redis.call('PEXPIREAT', sk, keep)
redis.call('SET', hk, id, 'PXAT', keep)
redis.call('SADD', k('wsess', wf), id)
keep_until(k('wsess', wf), keep)
keep_until(k('ws', wf), keep)
redis.call('ZADD', P .. 'idx:sessions', ARGV[7], id)
sweep('idx:sessions', 's')
return {'ok'}
