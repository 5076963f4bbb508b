-- decide_approval(P, id, 'approved'|'denied', approver, has note, note, now)
local ak = k('a', ARGV[2])
local a = hash(ak)
if not a then return {'not_found'} end
local status = approval_status(a, tonumber(ARGV[7]))
if status ~= 'pending' then return {'not_pending', status} end
redis.call('HSET', ak, 'decision', ARGV[3], 'approver', ARGV[4], 'decided_at', ARGV[7])
if ARGV[5] == '1' then redis.call('HSET', ak, 'note', ARGV[6]) end
return {'ok', redis.call('HGETALL', ak)}
