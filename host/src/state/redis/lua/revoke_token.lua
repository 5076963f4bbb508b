-- revoke_token(P, jti)
local tk = k('t', ARGV[2])
if redis.call('EXISTS', tk) == 0 then return 0 end
redis.call('HSET', tk, 'revoked', '1')
return 1
