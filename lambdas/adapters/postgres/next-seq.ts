import { POSTGRES_SEQ_LANE, SEQ_PER_MILLISECOND } from "../../core/sequence.ts";

/**
 * The next seq of a thread when PostgreSQL allocates it (core/sequence.ts: the hybrid clock, lane
 * 500), as an expression over `threads.last_seq`. The one copy: the synchronous commit and the
 * Redis-down allocation must never disagree, or seqs could repeat.
 */
export const NEXT_SEQ_SQL = `GREATEST(last_seq + 1,
  floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint * ${SEQ_PER_MILLISECOND} + ${POSTGRES_SEQ_LANE})`;
