-- revoke_session(P, id)
local sk = k('s', ARGV[2])
if redis.call('EXISTS', sk) == 0 then return 0 end
redis.call('HSET', sk, 'revoked', '1')
return 1
