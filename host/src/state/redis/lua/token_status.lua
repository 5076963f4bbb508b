-- token_status(P, jti, now (s), consume '0'|'1'): {record} when active.
local tk = k('t', ARGV[2])
local t = hash(tk)
local now = tonumber(ARGV[3])
if not t then return {} end
if t.revoked == '1' or (t.single_use == '1' and t.used == '1') or now >= tonumber(t.exp) then
  return {}
end
local s = redis.call('HMGET', k('s', t.session), 'revoked', 'expires')
if not s[1] or s[1] == '1' or now * 1000 >= tonumber(s[2]) then return {} end
if ARGV[4] == '1' and t.single_use == '1' then redis.call('HSET', tk, 'used', '1') end
return {t.record}
