package redis

import "github.com/redis/rueidis"

// The Lua scripts below run atomically inside Redis; rueidis sends them with
// EVALSHA and falls back to EVAL when the server does not know the script
// (after a restart or SCRIPT FLUSH).
//
// Every time they use is Redis' own clock (TIME), so nodes with skewed
// clocks agree on expiry and on Publication.Time.
//
// A history element, which is also the pub/sub payload, is
//
//	<offset> <epoch> <time ms> <priority> <len(conflate)> <len(from)> <conflate><from><data>
//
// The first three fields are written by the publish script; the rest (the
// "body") is built by the node (see appendBody). Numbers are decimal; the
// epoch is hex. See decodePublication.

// luaNow is shared by the scripts: Redis' clock in unix milliseconds.
const luaNow = `
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// luaElementTime is shared by the scripts: the time field of a history
// element.
const luaElementTime = `
local function elementTime(e)
  local a = string.find(e, ' ', 1, true)
  local b = string.find(e, ' ', a + 1, true)
  local c = string.find(e, ' ', b + 1, true)
  return tonumber(string.sub(e, b + 1, c - 1))
end
`

// publishScript appends a message to a channel's stream and publishes it.
// Each redis.call costs a few microseconds of Redis' single thread, so the
// script skips the calls that would change nothing: state fields are
// written only when they change, the history is trimmed by size only when
// it is over, and by age only when its oldest message may have expired
// (field x keeps a lower bound of the oldest message's time).
//
// KEYS[1] stream state (hash: o offset, e epoch, t history TTL ms, s
// history size, x lower bound of the oldest retained message's time, r run
// id of the Redis process that wrote the stream last)
// KEYS[2] history (list, oldest first)
// KEYS[3] idempotency key (optional)
// ARGV[1] body
// ARGV[2] history size (0: keep none)
// ARGV[3] history TTL in ms (0: no time bound)
// ARGV[4] stream TTL in ms
// ARGV[5] idempotency window in ms
// ARGV[6] epoch for a stream that does not exist yet
// ARGV[7] pub/sub channel
//
// Returns {offset, epoch, duplicate (0 or 1)}.
var publishScript = rueidis.NewLuaScript(luaNow + luaElementTime + `
if KEYS[3] then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local sp = string.find(seen, ' ', 1, true)
    return {tonumber(string.sub(seen, 1, sp - 1)), string.sub(seen, sp + 1), 1}
  end
end
local now = nowms()
local size = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])

local state = redis.call('HMGET', KEYS[1], 'e', 't', 's', 'x', 'r')
local epoch = state[1]
local prevttl = tonumber(state[2]) or 0
local prevsize = tonumber(state[3]) or 0
local x = tonumber(state[4])
-- The run id changes with every start of the Redis process (and on a
-- failover to a replica). A stream last written by another process may
-- have been restored from an older snapshot or a lagging replica: the
-- offsets after the restored one may already have been handed out, so the
-- stream starts over rather than reuse them in the same epoch. A stream
-- without a run id (written before Ferry recorded it) is adopted.
local runid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
if epoch and state[5] and state[5] ~= runid then epoch = nil end
local fields = {}
local offset
if epoch then
  offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
  if state[5] ~= runid then fields = {'r', runid} end
else
  -- A new stream (or one whose state was lost or may be stale): a new
  -- epoch, and no history from an earlier stream.
  epoch = ARGV[6]
  offset = 1
  if state[1] then redis.call('DEL', KEYS[1]) end
  redis.call('DEL', KEYS[2])
  prevttl, prevsize, x = -1, -1, nil
  fields = {'e', epoch, 'o', 1, 'r', runid}
end
local oldx = x

-- drop messages at least maxage ms old from the head of the history
local function expire(maxage)
  if maxage <= 0 or (x and now - x < maxage) then return end
  while true do
    local head = redis.call('LINDEX', KEYS[2], 0)
    if not head then return end
    local t = elementTime(head)
    if now - t < maxage then
      x = t
      return
    end
    redis.call('LPOP', KEYS[2])
  end
end

local msg = string.format('%d %s %d ', offset, epoch, now) .. ARGV[1]
if size > 0 then
  -- what expired under the previous bounds stays gone under longer ones
  if prevttl > 0 and prevttl ~= ttl then expire(prevttl) end
  local len = redis.call('RPUSH', KEYS[2], msg)
  if len == 1 then x = now end
  if len > size then redis.call('LTRIM', KEYS[2], -size, -1) end
  expire(ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
  elseif prevttl ~= 0 then
    redis.call('PERSIST', KEYS[2])
  end
elseif prevsize ~= 0 then
  redis.call('DEL', KEYS[2])
end

if ttl ~= prevttl then
  fields[#fields + 1] = 't'
  fields[#fields + 1] = ttl
end
if size ~= prevsize then
  fields[#fields + 1] = 's'
  fields[#fields + 1] = size
end
if x and x ~= oldx then
  fields[#fields + 1] = 'x'
  fields[#fields + 1] = string.format('%d', x)
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end

-- The stream lives at least StreamTTL and at least as long as its newest
-- message.
local keep = tonumber(ARGV[4])
if size > 0 then
  if ttl <= 0 then keep = 0 elseif ttl > keep then keep = ttl end
end
if keep > 0 then
  redis.call('PEXPIRE', KEYS[1], keep)
elseif not (prevsize > 0 and prevttl == 0) then
  redis.call('PERSIST', KEYS[1])
end

if KEYS[3] then
  redis.call('SET', KEYS[3], string.format('%d %s', offset, epoch), 'PX', ARGV[5])
end
redis.call('PUBLISH', ARGV[7], msg)
return {offset, epoch, 0}
`)

// historyScript reads a channel's position and retained messages in one
// step.
//
// KEYS[1] stream state, KEYS[2] history (as for publishScript)
// ARGV[1] since offset (0: from the oldest retained message)
// ARGV[2] since epoch
// ARGV[3] limit (0: all, negative: none)
//
// Returns {offset, epoch, first, messages...}: the latest offset and epoch
// ({0, "", 1} for a stream that does not exist), the offset of the oldest
// message still retained (offset+1 when none is), and the messages asked
// for, oldest first.
var historyScript = rueidis.NewLuaScript(luaNow + luaElementTime + `
local state = redis.call('HMGET', KEYS[1], 'o', 'e', 't', 'x')
if not state[2] then return {0, '', 1} end
local offset = tonumber(state[1])
local epoch = state[2]
local ttl = tonumber(state[3]) or 0
local len = redis.call('LLEN', KEYS[2])
local base = offset - len + 1 -- the offset of the element at index 0

-- Messages are appended in time order, so the expired ones (not yet
-- removed by a publish) are a prefix: find where it ends.
local live = 0
local x = tonumber(state[4])
if ttl > 0 and len > 0 then
  local now = nowms()
  local function expired(i)
    return now - elementTime(redis.call('LINDEX', KEYS[2], i)) >= ttl
  end
  if not (x and now - x < ttl) and expired(0) then
    local lo, hi = 1, len
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if expired(mid) then lo = mid + 1 else hi = mid end
    end
    live = lo
  end
end
local first = base + live

local since = tonumber(ARGV[1])
local start
if since <= 0 or ARGV[2] ~= epoch then
  start = first
elseif since > offset then
  start = offset + 1
elseif since + 1 >= first then
  start = since + 1
else
  start = first
end

local res = {offset, epoch, first}
local limit = tonumber(ARGV[3])
if limit >= 0 and start <= offset then
  local from = start - base
  local to = len - 1
  if limit > 0 and from + limit - 1 < to then to = from + limit - 1 end
  local msgs = redis.call('LRANGE', KEYS[2], from, to)
  for i = 1, #msgs do res[#res + 1] = msgs[i] end
end
return res
`)

// addPresenceScript records a connection in a channel's presence.
//
// KEYS[1] entries (hash: conn -> encoded PresenceInfo)
// KEYS[2] expiries (sorted set: conn scored by expiry in unix ms, +inf for never)
// ARGV[1] conn, ARGV[2] encoded info, ARGV[3] TTL in ms (0: never expires)
//
// Both keys expire with their last-expiring entry.
var addPresenceScript = rueidis.NewLuaScript(luaNow + `
local ttl = tonumber(ARGV[3])
local exp = '+inf'
if ttl > 0 then exp = string.format('%d', nowms() + ttl) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], exp, ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
else
  redis.call('PEXPIREAT', KEYS[1], last[2])
  redis.call('PEXPIREAT', KEYS[2], last[2])
end
return 1
`)

// removePresenceScript forgets a connection's presence.
//
// KEYS as for addPresenceScript; ARGV[1] conn.
var removePresenceScript = rueidis.NewLuaScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// presenceScript drops a channel's expired presence entries and returns the
// others as a flat list of conn, encoded info.
//
// KEYS as for addPresenceScript.
var presenceScript = rueidis.NewLuaScript(luaNow + `
local now = nowms()
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #gone > 0 then
  for i = 1, #gone, 1000 do
    redis.call('HDEL', KEYS[1], unpack(gone, i, math.min(i + 999, #gone)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
return redis.call('HGETALL', KEYS[1])
`)

// luaNever is the deadline score of a user connection that never expires
// (2^53-1 ms: exact in a Lua number, far past any real deadline).
const luaNever = `local never = 9007199254740991
`

// addUserConnScript records a connection of a user and returns the user's
// connections beyond the keep newest, for eviction. Every step is O(log n)
// in the user's connection count, plus the expired entries it drops (each
// once) and the connections it returns: nothing reads the whole set.
//
// KEYS[1] nodes (hash: conn -> node), KEYS[2] by since (sorted set: score
// since in unix ms), KEYS[3] by deadline (sorted set: score deadline in unix
// ms, never = 2^53-1)
// ARGV[1] conn, ARGV[2] since in unix ms ("": now), ARGV[3] TTL in ms (0:
// never expires), ARGV[4] node, ARGV[5] keep (0: return none)
//
// Returns a flat list of conn, since, node, oldest first (equal since: by
// conn). A connection added again keeps its original since. The keys expire
// with their last-expiring entry.
var addUserConnScript = rueidis.NewLuaScript(luaNow + luaNever + `
local now = nowms()
local ttl = tonumber(ARGV[3])
local exp = never
if ttl > 0 then exp = now + ttl end
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for i = 1, #gone, 1000 do
  local part = {unpack(gone, i, math.min(i + 999, #gone))}
  redis.call('HDEL', KEYS[1], unpack(part))
  redis.call('ZREM', KEYS[2], unpack(part))
  redis.call('ZREM', KEYS[3], unpack(part))
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local since = now
  if ARGV[2] ~= '' then since = tonumber(ARGV[2]) end
  redis.call('ZADD', KEYS[2], string.format('%d', since), ARGV[1])
end
redis.call('ZADD', KEYS[3], string.format('%d', exp), ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
local last = tonumber(redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')[2])
for k = 1, 3 do
  if last >= never then
    redis.call('PERSIST', KEYS[k])
  else
    redis.call('PEXPIREAT', KEYS[k], string.format('%d', last))
  end
end
local out = {}
local keep = tonumber(ARGV[5])
if keep > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n > keep then
    local old = redis.call('ZRANGE', KEYS[2], 0, n - keep - 1, 'WITHSCORES')
    for i = 1, #old, 2 do
      out[#out + 1] = old[i]
      out[#out + 1] = old[i + 1]
      out[#out + 1] = redis.call('HGET', KEYS[1], old[i]) or ''
    end
  end
end
return out
`)

// removeUserConnScript forgets a connection of a user.
//
// KEYS as addUserConnScript's; ARGV[1] conn.
var removeUserConnScript = rueidis.NewLuaScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 0
`)
