-- commit(P, session, workflow, operation, max grants or '', approval or '',
--        now, jti or '', token json, token exp (s), single use, token
--        expires at (ms), n reads, n × (key, present, value),
--        then writes as (kind 's'|'i', key, value|delta) to the end)
-- Every check before any change: a refusal commits nothing.
local sid, wf, op = ARGV[2], ARGV[3], ARGV[4]
local now = tonumber(ARGV[7])
local s = hash(k('s', sid))
if not s then return {'error', 'unknown_session'} end
if s.revoked == '1' then return {'error', 'revoked'} end
if s.workflow ~= wf then return {'error', 'wrong_workflow', s.workflow} end
local jti = ARGV[8]
if jti ~= '' and redis.call('EXISTS', k('t', jti)) == 1 then return {'error', 'jti_taken'} end

local ws = k('ws', wf)
local i = 14
for _ = 1, tonumber(ARGV[13]) do
  local current = redis.call('HGET', ws, ARGV[i])
  local seen = false
  if ARGV[i + 1] == '1' then seen = ARGV[i + 2] end
  if current ~= seen then return {'changed', redis.call('HGETALL', ws)} end
  i = i + 3
end

local gk = k('g', sid)
local granted = tonumber(redis.call('HGET', gk, op) or '0')
if ARGV[5] ~= '' and granted >= tonumber(ARGV[5]) then return {'budget'} end

local ak = nil
if ARGV[6] ~= '' then
  ak = k('a', ARGV[6])
  local a = hash(ak)
  if not a then return {'approval', 'missing'} end
  if a.session ~= sid then return {'approval', 'other_session'} end
  local status = approval_status(a, now)
  if status ~= 'approved' then return {'approval', 'status', status} end
end

if ak then redis.call('HSET', ak, 'decision', 'used', 'used_at', ARGV[7]) end
redis.call('HINCRBY', gk, op, 1)
keep_until(gk, s.keep)
local wrote = false
while i <= #ARGV do
  if ARGV[i] == 's' then
    redis.call('HSET', ws, ARGV[i + 1], ARGV[i + 2])
  else
    incr(ws, ARGV[i + 1], ARGV[i + 2])
  end
  wrote = true
  i = i + 3
end
if wrote then keep_until(ws, s.keep) end
if jti ~= '' then
  local tk = k('t', jti)
  redis.call('HSET', tk, 'record', ARGV[9], 'session', sid, 'exp', ARGV[10],
    'single_use', ARGV[11], 'used', '0', 'revoked', '0')
  redis.call('PEXPIREAT', tk, ARGV[12])
end
return {'ok'}
