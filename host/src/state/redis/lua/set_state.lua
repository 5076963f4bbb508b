-- set_state(P, workflow, n × (key, present '0'|'1', value)): the state after.
local ws = k('ws', ARGV[2])
for i = 3, #ARGV, 3 do
  if ARGV[i + 1] == '1' then
    redis.call('HSET', ws, ARGV[i], ARGV[i + 2])
  else
    redis.call('HDEL', ws, ARGV[i])
  end
end
return redis.call('HGETALL', ws)
