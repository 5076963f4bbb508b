-- list_approvals(P): every approval Redis still keeps, as flat hashes.
local index = P .. 'idx:approvals'
local out = {}
for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
  local flat = redis.call('HGETALL', k('a', id))
  if #flat == 0 then
    redis.call('ZREM', index, id)
  else
    out[#out + 1] = flat
  end
end
return out
