-- lookup(P, digest, now): what a handle names, changing nothing.
local id = redis.call('GET', k('h', ARGV[2]))
if not id then return {'unknown'} end
local s = hash(k('s', id))
if not s then return {'unknown'} end
return {session_status(s, tonumber(ARGV[3])), s.json, s.revoked}
