/**
 * Lua scripts: each runs atomically on the one cluster slot its keys share (`{t:<thread>}`).
 * Numbers cross the boundary as strings formatted with %.0f: Lua's tostring would round a
 * 16-digit seq. Times (`now`, deadlines) come from the caller's clock; the seq's clock component
 * comes from the Redis server (TIME), so seqs stay monotonic whatever the callers' clocks say.
 *
 * The rules these scripts implement are specified by the contract suite
 * (test/contracts/message-cache.contract.ts), which runs against this adapter and the fake.
 */
import type { RedisClient } from "./client.ts";

export interface ScriptDefinition {
  readonly name: string;
  /** How many KEYS it takes; "varying": the caller passes the count first. */
  readonly keys: number | "varying";
  readonly lua: string;
}

/**
 * Shared helpers. `live_min`: the lowest entry of a `<seq>:<deadline>` set whose deadline has not
 * passed (expired entries are dropped on the way). `trim`: keeps the newest `maxLen` messages but
 * never drops one PostgreSQL may lack, nor raises the floor over a seq still pending (a slow
 * accept's message must land at or above the floor, where reads find it). `visible`: gives a
 * message the thread's next stream position and logs it for replay.
 */
const LIB = `
local function fmt(n) return string.format('%.0f', n) end
local function live_min(key, now)
  while true do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #first == 0 then return nil end
    local deadline = tonumber(string.match(first[1], ':(%d+)$'))
    if deadline ~= nil and deadline >= now then return tonumber(first[2]) end
    redis.call('ZREM', key, first[1])
  end
end
local function trim(st, msgs, pend, unp, maxLen, now)
  local n = redis.call('ZCARD', msgs)
  if n <= maxLen then return end
  local keep = tonumber(redis.call('ZRANGE', msgs, n - maxLen, n - maxLen, 'WITHSCORES')[2])
  local p = live_min(pend, now)
  if p ~= nil and p < keep then keep = p end
  local u = live_min(unp, now)
  if u ~= nil and u < keep then keep = u end
  if redis.call('ZREMRANGEBYSCORE', msgs, '-inf', '(' .. fmt(keep)) == 0 then return end
  local floor = tonumber(redis.call('HGET', st, 'floor') or '0')
  if keep > floor then redis.call('HSET', st, 'floor', fmt(keep)) end
end
local function visible(st, log, seq, logLen, ttl)
  local pos = redis.call('HINCRBY', st, 'pos', 1)
  redis.call('ZADD', log, pos, seq)
  -- Trimmed by position, every so often: the log holds at least logLen positions.
  if pos % 16 == 0 then
    redis.call('ZREMRANGEBYSCORE', log, '-inf', '(' .. fmt(pos - logLen + 1))
    redis.call('EXPIRE', log, ttl)
  elseif pos == 1 then
    redis.call('EXPIRE', log, ttl)
  end
  return pos
end
local function server_clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + math.floor(tonumber(t[2]) / 1000) * 1000
end
`;

/**
 * KEYS: st, gone. ARGV: thread JSON, last seq PostgreSQL has seen, genesis ("1"/"0"), new epoch id, now,
 * persist bound (ms), ttl (s), idempotency window (ms), owner id. Returns -1 and does nothing when
 * the thread is marked gone (deleted: a request that read it before the delete must not bring it
 * back). Creates the hot state when there is none;
 * otherwise only updates the thread record. A restored state (not genesis) starts a new epoch, its
 * index floor above everything allocated before, and — within the idempotency window of the
 * thread's last message — asks the accept path to check unknown keys against PostgreSQL.
 */
export const INSTALL: ScriptDefinition = {
  name: "chatInstall",
  keys: 2,
  lua: `${LIB}
local st = KEYS[1]
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('EXISTS', st) == 1 then
  redis.call('HSET', st, 'meta', ARGV[1], 'own', ARGV[9])
  redis.call('EXPIRE', st, ARGV[7])
  return 0
end
local last = tonumber(ARGV[2])
local now = tonumber(ARGV[5])
if ARGV[3] == '1' then
  redis.call('HSET', st, 'meta', ARGV[1], 'own', ARGV[9], 'seq', fmt(last), 'pos', '0', 'ep', ARGV[4],
    'floor', '0', 'idu', '0')
else
  local floor = last + 1
  local clock = server_clock()
  if clock > floor then floor = clock end
  local window = tonumber(ARGV[8])
  local idu = now + tonumber(ARGV[6])
  if math.floor(last / 1000) > now - window then idu = now + window end
  redis.call('HSET', st, 'meta', ARGV[1], 'own', ARGV[9], 'seq', fmt(floor - 1), 'pos', '0', 'ep', ARGV[4],
    'floor', fmt(floor), 'idu', fmt(idu))
end
redis.call('EXPIRE', st, ARGV[7])
return 1
`,
};

/**
 * KEYS: st, subs. Forgets the thread record (the next use installs it again from PostgreSQL, which
 * holds the changes in their order: two changes whose hot-tier writes crossed cannot leave the
 * older one here); returns the subscriber set.
 */
export const UPDATE_THREAD: ScriptDefinition = {
  name: "chatUpdateThread",
  keys: 2,
  lua: `
redis.call('HDEL', KEYS[1], 'meta')
return redis.call('SMEMBERS', KEYS[2])
`,
};

/**
 * KEYS: st, pend, idem, msgs. ARGV: owner ("" = any), token, fingerprint, created_at_ms, now, lease
 * deadline, pending deadline, ttl, idempotency ttl, client supplied ("1"/"0").
 * Returns {0} unknown thread | {4} not the owner's | {5} key used for other content | {3} in
 * progress | {2, meta, message or ""} replay ("": no longer cached, read it by id) |
 * {1, meta, seq, created_at_ms, takeover, verify}.
 * Every key gets a record, also one the server made up (the answer names it, and a try that repeats
 * a call that timed out finds its own reservation by it); only a client's key may have been used
 * before, so only a client's key is verified. A record is a hash: s (p pending / c complete), t
 * (the holding try's token), q (seq), c (created_at_ms), h (fingerprint), d (lease deadline), u
 * ("1": outcome unknown, free to take over), x (what the holding try was told: "k" took it over,
 * "v" must verify — told again when it repeats the call), p (pos).
 * The seq is max(last + 1, server ms * 1000): see core/sequence.ts.
 */
export const RESERVE: ScriptDefinition = {
  name: "chatReserve",
  keys: 4,
  lua: `${LIB}
local st, pend, idem, msgs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local hv = redis.call('HMGET', st, 'meta', 'own', 'seq', 'idu')
local meta = hv[1]
if not meta then return {0} end
if ARGV[1] ~= '' and hv[2] ~= ARGV[1] then return {4} end
local now = tonumber(ARGV[5])
redis.call('EXPIRE', st, ARGV[8])
local rec = redis.call('HMGET', idem, 's', 't', 'q', 'c', 'h', 'd', 'u', 'x')
if rec[1] then
  if rec[5] ~= ARGV[3] then return {5} end
  if rec[1] == 'c' then
    local row = redis.call('ZRANGEBYSCORE', msgs, rec[3], rec[3])
    return {2, meta, row[1] or ''}
  end
  if rec[2] == ARGV[2] then
    local x = rec[8] or ''
    return {1, meta, rec[3], rec[4], x == 'k' and '1' or '0', x == 'v' and '1' or '0'}
  end
  if rec[7] == '1' or tonumber(rec[6]) < now then
    redis.call('HSET', idem, 't', ARGV[2], 'd', ARGV[6], 'u', '0', 'x', 'k')
    redis.call('ZREMRANGEBYSCORE', pend, rec[3], rec[3])
    redis.call('ZADD', pend, rec[3], rec[3] .. ':' .. ARGV[7])
    return {1, meta, rec[3], rec[4], '1', '0'}
  end
  return {3}
end
local nxt = tonumber(hv[3] or '0') + 1
local clock = server_clock()
if clock > nxt then nxt = clock end
local seq = fmt(nxt)
redis.call('HSET', st, 'seq', seq)
redis.call('ZADD', pend, seq, seq .. ':' .. ARGV[7])
redis.call('EXPIRE', pend, ARGV[8])
local verify = '0'
if ARGV[10] == '1' and now < tonumber(hv[4] or '0') then verify = '1' end
redis.call('HSET', idem, 's', 'p', 't', ARGV[2], 'q', seq, 'c', ARGV[4], 'h', ARGV[3], 'd', ARGV[6], 'u', '0',
  'x', verify == '1' and 'v' or '')
redis.call('EXPIRE', idem, ARGV[9])
return {1, meta, seq, ARGV[4], '0', verify}
`,
};

/**
 * KEYS: st, msgs, pend, unp, subs, idem, log. ARGV: seq, message JSON, queued ("1"/"0"), maxLen,
 * ttl, idempotency ttl, now, unpersisted deadline, fingerprint, log length, token.
 * Returns {0} state lost (none, or one made anew above this seq: reads look below its floor in
 * PostgreSQL) | {2, message or ""} another try made it visible first | {1, pos, epoch,
 * subscribers} (also to the same try repeating a call that timed out). The subscriber set is
 * read here, atomically with the message getting its position: a connection that follows the
 * thread later replays it from the log.
 */
export const STORE: ScriptDefinition = {
  name: "chatStore",
  keys: 7,
  lua: `${LIB}
local st, msgs, pend, unp, subs, idem, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
if redis.call('EXISTS', st) == 0 then return {0} end
local rec = redis.call('HMGET', idem, 's', 't', 'p', 'q')
if rec[1] == 'c' then
  if rec[2] == ARGV[11] then return {1, rec[3], redis.call('HGET', st, 'ep'), redis.call('SMEMBERS', subs)} end
  local row = redis.call('ZRANGEBYSCORE', msgs, rec[4], rec[4])
  return {2, row[1] or ''}
end
local seq = ARGV[1]
if tonumber(seq) < tonumber(redis.call('HGET', st, 'floor') or '0') then return {0} end
local now = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', msgs, seq, seq)
redis.call('ZADD', msgs, seq, ARGV[2])
redis.call('ZREMRANGEBYSCORE', pend, seq, seq)
if ARGV[3] == '1' then
  redis.call('ZADD', unp, seq, seq .. ':' .. ARGV[8])
  redis.call('EXPIRE', unp, ARGV[5])
end
local pos = visible(st, log, seq, tonumber(ARGV[10]), ARGV[5])
redis.call('HSET', idem, 's', 'c', 'q', seq, 'h', ARGV[9], 't', ARGV[11], 'p', fmt(pos))
redis.call('EXPIRE', idem, ARGV[6])
trim(st, msgs, pend, unp, tonumber(ARGV[4]), now)
redis.call('EXPIRE', msgs, ARGV[5])
redis.call('EXPIRE', st, ARGV[5])
return {1, fmt(pos), redis.call('HGET', st, 'ep'), redis.call('SMEMBERS', subs)}
`,
};

/**
 * KEYS: pend, idem. ARGV: seq, token, outcome ("a" abandoned | "u" unknown | "r" replayed),
 * pending deadline, replayed seq, idempotency ttl, fingerprint, created_at_ms, lease deadline.
 * An unknown outcome leaves a record even for a key the server made up: the client retries with it.
 */
export const RELEASE: ScriptDefinition = {
  name: "chatRelease",
  keys: 2,
  lua: `
local pend, idem, seq = KEYS[1], KEYS[2], ARGV[1]
local rec = redis.call('HMGET', idem, 's', 't')
local mine = rec[1] == 'p' and rec[2] == ARGV[2]
if ARGV[3] == 'r' then
  redis.call('ZREMRANGEBYSCORE', pend, seq, seq)
  redis.call('DEL', idem)
  redis.call('HSET', idem, 's', 'c', 'q', ARGV[5], 'h', ARGV[7])
  redis.call('EXPIRE', idem, ARGV[6])
elseif ARGV[3] == 'u' then
  if redis.call('ZCOUNT', pend, seq, seq) > 0 then
    redis.call('ZREMRANGEBYSCORE', pend, seq, seq)
    redis.call('ZADD', pend, seq, seq .. ':' .. ARGV[4])
  end
  if mine then
    redis.call('HSET', idem, 'u', '1')
  elseif not rec[1] then
    redis.call('HSET', idem, 's', 'p', 't', ARGV[2], 'q', seq, 'c', ARGV[8], 'h', ARGV[7], 'd', ARGV[9], 'u', '1')
    redis.call('EXPIRE', idem, ARGV[6])
  end
else
  redis.call('ZREMRANGEBYSCORE', pend, seq, seq)
  if mine then redis.call('DEL', idem) end
end
return 1
`,
};

/**
 * KEYS: st, msgs. ARGV: "b" (newest first, below the cursor) or "f" (oldest first, above it),
 * cursor ("" = none), count. Only rows at or above the floor are returned, with the stream
 * position they were read at. Returns {} without state, else {floor, epoch, pos, message JSON, ...}.
 */
export const HISTORY: ScriptDefinition = {
  name: "chatHistory",
  keys: 2,
  lua: `
local st, msgs = KEYS[1], KEYS[2]
local hv = redis.call('HMGET', st, 'floor', 'ep', 'pos')
local floor = hv[1]
if not floor then return {} end
local rows
if ARGV[1] == 'b' then
  local top = '+inf'
  if ARGV[2] ~= '' then top = '(' .. ARGV[2] end
  rows = redis.call('ZREVRANGEBYSCORE', msgs, top, floor, 'LIMIT', 0, ARGV[3])
else
  local low = floor
  if tonumber(ARGV[2]) >= tonumber(floor) - 1 then low = '(' .. ARGV[2] end
  rows = redis.call('ZRANGEBYSCORE', msgs, low, '+inf', 'LIMIT', 0, ARGV[3])
end
table.insert(rows, 1, hv[3])
table.insert(rows, 1, hv[2])
table.insert(rows, 1, floor)
return rows
`,
};

/**
 * KEYS: st, subs, log, msgs. ARGV: connection id, ttl, the client's epoch ("" = none), the
 * client's pos, most messages to replay.
 * Joins the subscriber set and reads the position, atomically; when the client's position is in
 * this epoch and the log still holds every message after it (at most the limit), returns them.
 * Returns {0} without state | {1, epoch, pos, "r", message, pos, ...} recovered from the log |
 * {1, epoch, pos, "f"}: the caller catches up by seq instead.
 */
export const FOLLOW: ScriptDefinition = {
  name: "chatFollow",
  keys: 4,
  lua: `
local st, subs, log, msgs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', st) == 0 then return {0} end
redis.call('SADD', subs, ARGV[1])
redis.call('EXPIRE', subs, ARGV[2])
local hv = redis.call('HMGET', st, 'ep', 'pos')
local ep, pos = hv[1], tonumber(hv[2])
local from = tonumber(ARGV[4])
if ARGV[3] ~= ep or from == nil or from > pos or pos - from > tonumber(ARGV[5]) then
  return {1, ep, hv[2], 'f'}
end
local entries = redis.call('ZRANGEBYSCORE', log, '(' .. ARGV[4], hv[2], 'WITHSCORES')
if #entries / 2 ~= pos - from then return {1, ep, hv[2], 'f'} end
local reply = {1, ep, hv[2], 'r'}
for i = 1, #entries, 2 do
  local row = redis.call('ZRANGEBYSCORE', msgs, entries[i], entries[i])
  if #row == 0 then return {1, ep, hv[2], 'f'} end
  reply[#reply + 1] = row[1]
  reply[#reply + 1] = entries[i + 1]
end
return reply
`,
};

/**
 * KEYS: st, msgs, pend, unp. ARGV: floor candidate, maxLen, ttl, now, then seq/JSON pairs read
 * from PostgreSQL directly below the floor. Adds them and lowers the floor; never touches the
 * range at or above the floor (what is missing there is not visible yet). Needs the state.
 */
export const WARM: ScriptDefinition = {
  name: "chatWarm",
  keys: 4,
  lua: `${LIB}
local st, msgs, pend, unp = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local floor = redis.call('HGET', st, 'floor')
if not floor then return 0 end
floor = tonumber(floor)
for i = 5, #ARGV, 2 do
  if tonumber(ARGV[i]) < floor and redis.call('ZCOUNT', msgs, ARGV[i], ARGV[i]) == 0 then
    redis.call('ZADD', msgs, ARGV[i], ARGV[i + 1])
  end
end
if tonumber(ARGV[1]) < floor then redis.call('HSET', st, 'floor', ARGV[1]) end
trim(st, msgs, pend, unp, tonumber(ARGV[2]), tonumber(ARGV[4]))
redis.call('EXPIRE', msgs, ARGV[3])
return 1
`,
};

/**
 * KEYS: st, msgs, pend, unp, subs, log, then one idempotency key per message. ARGV: maxLen, ttl,
 * idempotency ttl, now, log length, then seq/JSON/fingerprint triples of messages as PostgreSQL
 * stored them. Each is confirmed (no longer kept for PostgreSQL's sake). One that was never made
 * visible — it is not in the index (which keeps every visible message until it is confirmed) and
 * its key has no complete record, or it lies at or above the floor, where the index must hold it
 * — becomes visible now, with the next position: its accept could not cache it, ran while the hot
 * tier was away, or was in flight when the hot state was lost.
 * One made visible with another seq than PostgreSQL kept (a retry that reached the hot tier while
 * the original, accepted without it, was on its way) is corrected to the stored one, with the next
 * position too. Returns {0} without state, else {1, epoch, subscribers, seq, pos, ...} for the
 * messages made visible or corrected.
 */
export const REFRESH: ScriptDefinition = {
  name: "chatRefresh",
  keys: "varying",
  lua: `${LIB}
local st, msgs, pend, unp, subs, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
if redis.call('EXISTS', st) == 0 then return {0} end
local now = tonumber(ARGV[4])
local floor = tonumber(redis.call('HGET', st, 'floor') or '0')
local late = {}
for i = 6, #ARGV, 3 do
  local seq = ARGV[i]
  local key = KEYS[6 + (i - 3) / 3]
  redis.call('ZREMRANGEBYSCORE', unp, seq, seq)
  local rec = redis.call('HMGET', key, 's', 'q', 't')
  local complete = rec[1] == 'c'
  local stale = complete and rec[2] ~= seq
  local shown = redis.call('ZCOUNT', msgs, seq, seq) > 0
  if stale or (not shown and (not complete or tonumber(seq) >= floor)) then
    if stale then redis.call('ZREMRANGEBYSCORE', msgs, rec[2], rec[2]) end
    redis.call('ZREMRANGEBYSCORE', msgs, seq, seq)
    redis.call('ZADD', msgs, seq, ARGV[i + 1])
    redis.call('ZREMRANGEBYSCORE', pend, seq, seq)
    local pos = fmt(visible(st, log, seq, tonumber(ARGV[5]), ARGV[2]))
    -- A try still holding the key keeps it: its own store then answers with this position.
    local holder = rec[1] == 'p' and rec[3] or ''
    redis.call('HSET', key, 's', 'c', 'q', seq, 'h', ARGV[i + 2], 't', holder, 'p', pos)
    redis.call('EXPIRE', key, ARGV[3])
    late[#late + 1] = seq
    late[#late + 1] = pos
  end
end
if #late == 0 then return {1} end
trim(st, msgs, pend, unp, tonumber(ARGV[1]), now)
redis.call('EXPIRE', msgs, ARGV[2])
local reply = {1, redis.call('HGET', st, 'ep'), redis.call('SMEMBERS', subs)}
for _, v in ipairs(late) do reply[#reply + 1] = v end
return reply
`,
};

/**
 * KEYS: stream, content, streams. ARGV: opened message JSON, owner, base index, now, ttl, message
 * id, opened at (ms). Starts holding a stream unless one is held already. Returns 1 when it started one.
 */
export const STREAM_OPEN: ScriptDefinition = {
  name: "chatStreamOpen",
  keys: 3,
  lua: `
local sm, sc, open = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sm) == 1 then return 0 end
local base = tonumber(ARGV[3])
redis.call('HSET', sm, 'st', 'streaming', 'i', string.format('%.0f', base - 1), 'base', ARGV[3], 'n', '0',
  'b', '0', 'o', ARGV[7], 'fa', '0', 'la', ARGV[4], 'msg', ARGV[1],
  'own', ARGV[2])
redis.call('SET', sc, '')
redis.call('SADD', open, ARGV[6])
redis.call('EXPIRE', sm, ARGV[5])
redis.call('EXPIRE', sc, ARGV[5])
redis.call('EXPIRE', open, ARGV[5])
return 1
`,
};

/**
 * KEYS: stream, content, subs. ARGV: index, text, now, idle timeout (ms), most deltas, most bytes,
 * ttl, the text's bytes in a queue record (the budget counts those: the final message must fit one). Returns {0} no state | {1, subscribers} appended | {2, state} not streaming | {3} this
 * index was appended before ({3, subscribers}: it is the last one, with this text: push it again)
 * | {4, next index} out of order | {5} idle too long | {6} too large.
 */
export const STREAM_APPEND: ScriptDefinition = {
  name: "chatStreamAppend",
  keys: 3,
  lua: `
local sm, sc, subs = KEYS[1], KEYS[2], KEYS[3]
local h = redis.call('HMGET', sm, 'st', 'i', 'n', 'b', 'la', 'fa')
if not h[1] then return {0} end
if h[1] ~= 'streaming' then return {2, h[1]} end
local idx, last, now = tonumber(ARGV[1]), tonumber(h[2]), tonumber(ARGV[3])
if idx < last then return {3} end
if idx == last then
  -- The last delta again (a retry after a timeout): if it is the one applied, its subscribers may
  -- never have been sent it (the try that applied it failed before its push): they get it again.
  local len = string.len(ARGV[2])
  if len == 0 or redis.call('GETRANGE', sc, -len, -1) == ARGV[2] then return {3, redis.call('SMEMBERS', subs)} end
  return {3}
end
if now - tonumber(h[5]) > tonumber(ARGV[4]) then return {5} end
if idx > last + 1 then return {4, string.format('%.0f', last + 1)} end
local n, b = tonumber(h[3]) + 1, tonumber(h[4]) + tonumber(ARGV[8])
if n > tonumber(ARGV[5]) or b > tonumber(ARGV[6]) then return {6} end
redis.call('APPEND', sc, ARGV[2])
redis.call('HSET', sm, 'i', ARGV[1], 'n', tostring(n), 'b', tostring(b), 'la', ARGV[3])
if h[6] == '0' then redis.call('HSET', sm, 'fa', ARGV[3]) end
redis.call('EXPIRE', sm, ARGV[7])
redis.call('EXPIRE', sc, ARGV[7])
return {1, redis.call('SMEMBERS', subs)}
`,
};

/**
 * KEYS: stream, content, streams, msgs, subs, st, ended. ARGV: expected last index, final message
 * JSON, final state, seq, ttl, message id, most ended replies kept, ttl of an ended reply's state. Ends the stream when no delta
 * arrived after the expected index; the thread's index then holds the final message in place of
 * the opened one, and the ending is listed with the thread's stream position of that moment (a
 * subscriber resuming from a position at or below it is sent the ending). Returns {0} no state |
 * {1, subscribers} ended now | {2, state, final JSON or "", subscribers} ended before | {3} a
 * delta arrived.
 */
export const STREAM_FINISH: ScriptDefinition = {
  name: "chatStreamFinish",
  keys: 7,
  lua: `
local sm, sc, open, msgs, subs, st, ended = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local h = redis.call('HMGET', sm, 'st', 'i', 'fin')
if not h[1] then return {0} end
if h[1] ~= 'streaming' then return {2, h[1], h[3] or '', redis.call('SMEMBERS', subs)} end
if h[2] ~= ARGV[1] then return {3} end
redis.call('HSET', sm, 'st', ARGV[3], 'fin', ARGV[2])
redis.call('SREM', open, ARGV[6])
if redis.call('ZCOUNT', msgs, ARGV[4], ARGV[4]) > 0 then
  redis.call('ZREMRANGEBYSCORE', msgs, ARGV[4], ARGV[4])
  redis.call('ZADD', msgs, ARGV[4], ARGV[2])
end
redis.call('ZADD', ended, redis.call('HGET', st, 'pos') or '0', ARGV[6])
redis.call('ZREMRANGEBYRANK', ended, 0, -1 - tonumber(ARGV[7]))
redis.call('EXPIRE', ended, ARGV[8])
-- The final message holds the content now; the ended state is kept a while for repeats and for
-- resuming subscribers (later, PostgreSQL answers both).
redis.call('DEL', sc)
redis.call('EXPIRE', sm, ARGV[8])
return {1, redis.call('SMEMBERS', subs)}
`,
};

/**
 * Token bucket. KEYS: bucket. ARGV: tokens per second, burst. Returns {allowed 0/1, seconds to wait}.
 * Time comes from the Redis server, so every Lambda instance shares one clock.
 */
export const TAKE_TOKEN: ScriptDefinition = {
  name: "chatTakeToken",
  keys: 1,
  lua: `
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed, wait = 0, (1 - tokens) / rate
if tokens >= 1 then
  tokens = tokens - 1
  allowed, wait = 1, 0
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, string.format('%.3f', wait)}
`,
};

export const ALL_SCRIPTS: readonly ScriptDefinition[] = [
  INSTALL,
  UPDATE_THREAD,
  RESERVE,
  STORE,
  RELEASE,
  HISTORY,
  FOLLOW,
  WARM,
  REFRESH,
  STREAM_OPEN,
  STREAM_APPEND,
  STREAM_FINISH,
  TAKE_TOKEN,
];

/** Scripts called with their key count first (see the cluster client's auto-pipelining). */
export const VARYING_KEY_SCRIPTS: string[] = ALL_SCRIPTS.filter((s) => s.keys === "varying").map(
  (s) => s.name,
);

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** Registers the scripts (EVALSHA with EVAL fallback, per cluster node) and calls them by name. */
export class Scripts {
  constructor(private readonly client: RedisClient) {
    for (const s of ALL_SCRIPTS) {
      client.defineCommand(
        s.name,
        s.keys === "varying" ? { lua: s.lua } : { numberOfKeys: s.keys, lua: s.lua },
      );
    }
  }

  run(
    script: ScriptDefinition,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    const fn = (this.client as unknown as Record<string, ScriptFn>)[script.name];
    if (fn === undefined) throw new Error(`script ${script.name} not registered`);
    return script.keys === "varying"
      ? fn.call(this.client, keys.length, ...keys, ...args)
      : fn.call(this.client, ...keys, ...args);
  }
}
