-- revoke_workflow(P, workflow): mark it (for good) and revoke its sessions.
local wf = ARGV[2]
redis.call('SET', k('wr', wf), '1')
local members = k('wsess', wf)
local revoked = {}
for _, id in ipairs(redis.call('SMEMBERS', members)) do
  local r = redis.call('HGET', k('s', id), 'revoked')
  if not r then
    redis.call('SREM', members, id)
  elseif r == '0' then
    redis.call('HSET', k('s', id), 'revoked', '1')
    revoked[#revoked + 1] = id
  end
end
return revoked
