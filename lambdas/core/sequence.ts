/**
 * Per-thread sequence numbers.
 *
 * A seq is a hybrid logical clock: `max(last + 1, epochMillis * 1000 + lane)`. The hot tier (Redis)
 * allocates in lane 0 and PostgreSQL (cache down, or the rollback mode) in lane 500, each against
 * its own server clock. Consequences:
 *  - seqs only grow within a thread as long as the clocks move forward, whichever tier allocated;
 *  - a Redis restart or FLUSHALL cannot make a seq be reused: the next value is at least
 *    `now * 1000`, which is above every value handed out before (up to 1,000 per ms per thread);
 *  - the two lanes keep the tiers from handing out the same value in the same millisecond;
 *  - PostgreSQL's unique (thread_id, seq) turns any violation of these assumptions into a visible
 *    persist failure (DLQ + alarm), never into a silently overwritten message.
 * Values stay below 2^53 until the year 2255, so they are exact JSON numbers.
 */
export const SEQ_PER_MILLISECOND = 1000;
export const REDIS_SEQ_LANE = 0;
export const POSTGRES_SEQ_LANE = 500;

/** Reference implementation of the rule the Lua script and the SQL statement apply. */
export const nextSeq = (last: number, nowMs: number, lane: number): number =>
  Math.max(last + 1, nowMs * SEQ_PER_MILLISECOND + lane);

/** The wall-clock millisecond a seq was allocated in (for diagnostics). */
export const seqMillis = (seq: number): number => Math.floor(seq / SEQ_PER_MILLISECOND);

/**
 * The highest seq that is settled by the passage of time: every message accepted more than
 * `persistBoundMs` ago is in PostgreSQL and known to the hot tier (the persist bound,
 * docs/architecture.md), and a seq is at least `allocation millisecond × 1000`. A subscriber that
 * cannot resume by stream position catches up by seq from the `settled` it last saw.
 */
export const settledByTime = (nowMs: number, persistBoundMs: number): number =>
  Math.max(0, (nowMs - persistBoundMs) * SEQ_PER_MILLISECOND - 1);

/** The settled cursor now, by one clock and one bound (every component that reports it shares one). */
export type Settled = () => number;

export const settledNow =
  (clock: { now(): number }, persistBoundMs: number): Settled =>
  () =>
    settledByTime(clock.now(), persistBoundMs);
