-- list_sessions(P, now): the active sessions; forgets index entries of
-- sessions that have expired out of Redis.
local now = tonumber(ARGV[2])
local out = {}
local index = P .. 'idx:sessions'
for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local s = redis.call('HMGET', k('s', id), 'json', 'revoked', 'expires')
  if not s[1] then
    redis.call('ZREM', index, id)
  elseif s[2] == '0' and now < tonumber(s[3]) then
    out[#out + 1] = s[1]
  end
end
return out
