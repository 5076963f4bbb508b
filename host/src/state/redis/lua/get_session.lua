-- get_session(P, id)
return redis.call('HMGET', k('s', ARGV[2]), 'json', 'revoked')
