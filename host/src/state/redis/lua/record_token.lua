-- record_token(P, jti, json, session, exp (s), single use, expires at (ms))
local tk = k('t', ARGV[2])
if redis.call('EXISTS', tk) == 1 then return {'error', 'jti_taken'} end
redis.call('HSET', tk, 'record', ARGV[3], 'session', ARGV[4], 'exp', ARGV[5],
  'single_use', ARGV[6], 'used', '0', 'revoked', '0')
redis.call('PEXPIREAT', tk, ARGV[7])
return {'ok'}
