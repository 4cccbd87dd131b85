/**
 * Lua scripts: each runs atomically on the one cluster slot its keys share. Numbers are passed and
 * returned as strings formatted with %.0f: Lua's tostring would round a 16-digit seq.
 */
import type { RedisClient } from "./client.ts";

export interface ScriptDefinition {
  readonly name: string;
  readonly keys: number;
  readonly lua: string;
}

/**
 * KEYS: meta, seq, subs, idem. ARGV: thread JSON to install ("" = read), ttl, use idem ("1"/"0").
 * Returns {0} unknown thread | {2, meta, original} replay | {1, meta, seq, subscribers}.
 * The seq is max(last + 1, now_ms * 1000): see core/sequence.ts.
 */
export const RESERVE: ScriptDefinition = {
  name: "chatReserve",
  keys: 4,
  lua: `
local meta
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  meta = ARGV[1]
else
  meta = redis.call('GET', KEYS[1])
  if not meta then return {0} end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if ARGV[3] == '1' then
  local original = redis.call('GET', KEYS[4])
  if original then return {2, meta, original} end
end
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + math.floor(tonumber(t[2]) / 1000) * 1000
local nxt = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if clock > nxt then nxt = clock end
local seq = string.format('%.0f', nxt)
redis.call('SET', KEYS[2], seq, 'EX', ARGV[2])
return {1, meta, seq, redis.call('SMEMBERS', KEYS[3])}
`,
};

/** Shared tail: keep the newest ARGV-given maxLen entries and raise the floor past what was dropped. */
const TRIM = (maxLenArg: string, ttlArg: string): string => `
local n = redis.call('ZCARD', KEYS[1])
local maxLen = tonumber(${maxLenArg})
if n > maxLen then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - maxLen - 1)
  local low = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local floor = redis.call('GET', KEYS[2])
  if (not floor) or tonumber(low[2]) > tonumber(floor) then
    redis.call('SET', KEYS[2], string.format('%.0f', tonumber(low[2])))
  end
end
redis.call('EXPIRE', KEYS[1], ${ttlArg})
redis.call('EXPIRE', KEYS[2], ${ttlArg})
`;

/**
 * KEYS: msgs, floor, idem. ARGV: seq, message JSON, maxLen, ttl, idem ttl, use idem.
 * A fresh index is complete from this message on: the floor starts here.
 */
export const STORE: ScriptDefinition = {
  name: "chatStore",
  keys: 3,
  lua: `
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if fresh or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[1])
end
if ARGV[6] == '1' then
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[5])
end
${TRIM("ARGV[3]", "ARGV[4]")}
return 1
`,
};

/**
 * KEYS: msgs, floor. ARGV: floor candidate, maxLen, ttl, then seq/JSON pairs.
 * Adds the messages not cached yet; the index is now complete from min(floor, candidate).
 */
export const WARM: ScriptDefinition = {
  name: "chatWarm",
  keys: 2,
  lua: `
for i = 4, #ARGV, 2 do
  if redis.call('ZCOUNT', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
local floor = redis.call('GET', KEYS[2])
if (not floor) or tonumber(ARGV[1]) < tonumber(floor) then
  redis.call('SET', KEYS[2], ARGV[1])
end
${TRIM("ARGV[2]", "ARGV[3]")}
return 1
`,
};

/**
 * KEYS: msgs, floor. ARGV: maxLen, ttl, then seq/JSON pairs.
 * Fills holes in an index that exists; never creates one (that would claim completeness).
 */
export const REFRESH: ScriptDefinition = {
  name: "chatRefresh",
  keys: 2,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local added = 0
for i = 3, #ARGV, 2 do
  if redis.call('ZCOUNT', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
    added = added + 1
  end
end
${TRIM("ARGV[1]", "ARGV[2]")}
return added
`,
};

/**
 * KEYS: msgs, floor. ARGV: "b" (newest first, below ARGV[2]) or "f" (oldest first, above ARGV[2]),
 * bound in ZRANGEBYSCORE syntax, count. Returns {} without a floor, else {floor, member, score, ...}.
 */
export const HISTORY: ScriptDefinition = {
  name: "chatHistory",
  keys: 2,
  lua: `
local floor = redis.call('GET', KEYS[2])
if not floor then return {} end
local rows
if ARGV[1] == 'b' then
  rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'WITHSCORES', 'LIMIT', 0, ARGV[3])
else
  rows = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[3])
end
table.insert(rows, 1, floor)
return rows
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

export const ALL_SCRIPTS: readonly ScriptDefinition[] = [RESERVE, STORE, WARM, REFRESH, HISTORY, TAKE_TOKEN];

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** Registers the scripts (EVALSHA with EVAL fallback, per cluster node) and calls them by name. */
export class Scripts {
  constructor(private readonly client: RedisClient) {
    for (const s of ALL_SCRIPTS) client.defineCommand(s.name, { numberOfKeys: s.keys, lua: s.lua });
  }

  run(
    script: ScriptDefinition,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    const fn = (this.client as unknown as Record<string, ScriptFn>)[script.name];
    if (fn === undefined) throw new Error(`script ${script.name} not registered`);
    return fn.call(this.client, ...keys, ...args);
  }
}
