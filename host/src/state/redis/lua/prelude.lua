-- Shared by every script. ARGV[1] is the key prefix; keys are built here
-- from ids the host passes, so scripts assume one Redis (not Cluster).
-- Numbers cross into Redis as strings formatted by int(): Lua's default
-- number formatting would turn a millisecond timestamp into 1.7e+12.
local P = ARGV[1]
local WINDOW = 60000
local CAP = 4096
local I64_MAX = '9223372036854775807'
local I64_MIN = '-9223372036854775808'

local function k(kind, id) return P .. kind .. ':' .. id end
local function int(x) return string.format('%d', x) end

-- A hash as a Lua table, or nil when the key is absent.
local function hash(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- Make `key` live at least until `at` (ms); a deadline is never shortened.
-- A key without one gets it: state outlives its sessions by the grace only.
local function keep_until(key, at)
  local t = redis.call('PEXPIRETIME', key)
  if t == -2 then return end
  if t == -1 or t < tonumber(at) then redis.call('PEXPIREAT', key, at) end
end

-- Drop a few index entries whose record has expired (amortised sweep).
local function sweep(index, kind)
  for _, id in ipairs(redis.call('ZRANGE', P .. index, 0, 9)) do
    if redis.call('EXISTS', k(kind, id)) == 0 then redis.call('ZREM', P .. index, id) end
  end
end

local function session_status(s, now)
  if s.revoked == '1' then return 'revoked' end
  if now >= tonumber(s.expires) then return 'expired' end
  return 'active'
end

local function approval_status(a, now)
  if a.decision == 'used' or a.decision == 'denied' then return a.decision end
  if now >= tonumber(a.expires) then return 'expired' end
  return a.decision
end

-- state.incr as the memory store does it: an absent or non-integer value
-- counts as 0 ("+7" and "007" are integers), the sum saturates.
local function incr(key, field, delta)
  local cur = redis.call('HGET', key, field)
  if cur then
    local sign, digits = string.match(cur, '^([+-]?)0*(%d+)$')
    if not digits then
      redis.call('HSET', key, field, delta)
      return
    end
    local norm = digits
    if sign == '-' and digits ~= '0' then norm = '-' .. digits end
    if norm ~= cur then redis.call('HSET', key, field, norm) end
  end
  local r = redis.pcall('HINCRBY', key, field, delta)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'overflow', 1, true) then
      if string.sub(delta, 1, 1) == '-' then
        redis.call('HSET', key, field, I64_MIN)
      else
        redis.call('HSET', key, field, I64_MAX)
      end
    else
      -- Digits beyond i64: not an integer, so 0 + delta.
      redis.call('HSET', key, field, delta)
    end
  end
end
