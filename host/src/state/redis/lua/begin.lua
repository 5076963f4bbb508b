-- begin(P, digest, now, approval id or '', role, limit, role, limit, ...)
-- Look the handle up; if active, count the request against the rate window
-- and read the usage and the workflow's state; fetch the approval.
local now = tonumber(ARGV[3])
local approval = {}
if ARGV[4] ~= '' then approval = redis.call('HGETALL', k('a', ARGV[4])) end
local id = redis.call('GET', k('h', ARGV[2]))
if not id then return {'unknown', approval} end
local sk = k('s', id)
local s = hash(sk)
if not s then return {'unknown', approval} end
local status = session_status(s, now)
if status ~= 'active' then return {status, approval, s.json, s.revoked} end

local limit = 0
for i = 5, #ARGV, 2 do
  if ARGV[i] == s.role then limit = tonumber(ARGV[i + 1]) end
end
local w = k('w', id)
redis.call('ZREMRANGEBYSCORE', w, '-inf', int(now - WINDOW))
local count = redis.call('ZCARD', w)
local total = tonumber(s.total)
redis.call('HSET', sk, 'total', int(total + 1))
local allowed, retry = 1, 0
if limit > 0 and count >= limit then
  -- Room comes back when all but limit - 1 entries have left.
  allowed = 0
  local e = redis.call('ZRANGE', w, int(count - limit), int(count - limit), 'WITHSCORES')
  local leaves = now
  if e[2] then leaves = tonumber(e[2]) + WINDOW end
  retry = math.min(math.max(leaves - now, 1), WINDOW)
else
  local cap = math.max(limit, CAP)
  if count >= cap then redis.call('ZREMRANGEBYRANK', w, 0, int(count - cap)) end
  local t = now
  local last = redis.call('ZRANGE', w, -1, -1, 'WITHSCORES')
  if last[2] and tonumber(last[2]) > t then t = tonumber(last[2]) end
  redis.call('ZADD', w, int(t), int(total + 1))
  redis.call('PEXPIRE', w, int(t - now + WINDOW))
end
return {
  'active', approval, s.json, s.revoked, int(total), count, allowed, int(retry),
  redis.call('HGETALL', k('g', id)), redis.call('HGETALL', k('ws', s.workflow)),
}
