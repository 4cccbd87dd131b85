/**
 * PostgreSQL schema, versioned. Applied in order by `migrate.ts` (local stack, tests, and the deploy
 * step); a version once released is never edited, only followed by a new one.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "threads, messages and the analytics outbox",
    sql: `
CREATE TABLE threads (
  id             uuid PRIMARY KEY,
  owner_id       text NOT NULL,
  title          text,
  metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL,
  created_at_ms  bigint NOT NULL,
  -- Highest seq PostgreSQL itself handed out (cache down, rollback mode); see core/sequence.ts.
  last_seq       bigint NOT NULL DEFAULT 0
);
CREATE INDEX threads_owner_recent ON threads (owner_id, created_at_ms DESC, id DESC);

CREATE TABLE messages (
  id                 uuid PRIMARY KEY,
  thread_id          uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
  seq                bigint NOT NULL,
  role               text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  user_id            text NOT NULL,
  content            text NOT NULL,
  metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
  client_message_id  text,
  created_at         timestamptz NOT NULL,
  created_at_ms      bigint NOT NULL,
  persisted_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- Also the index that history pages walk, in both directions.
  CONSTRAINT messages_thread_seq_key UNIQUE (thread_id, seq)
);

-- Messages committed in the request (SQS-down fallback, rollback mode) waiting for the analytics queue.
CREATE TABLE analytics_outbox (
  message_id   uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
  enqueued_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
`,
  },
  {
    version: 2,
    name: "outbox entries that fail on their own are retried later, then parked",
    sql: `
ALTER TABLE analytics_outbox
  ADD COLUMN attempts         integer NOT NULL DEFAULT 0,
  -- 'infinity': parked until an operator releases it (docs/reliability.md).
  ADD COLUMN next_attempt_at  timestamptz NOT NULL DEFAULT '-infinity',
  ADD COLUMN last_error       text;
`,
  },
  {
    version: 3,
    name: "replies that stream: state, usage and timings; feedback on replies",
    sql: `
-- A column with a constant default is added without rewriting the table (PostgreSQL 11+).
ALTER TABLE messages
  ADD COLUMN state           text NOT NULL DEFAULT 'complete'
                             CHECK (state IN ('streaming', 'complete', 'cancelled', 'error')),
  ADD COLUMN finish_reason   text,
  ADD COLUMN usage           jsonb,
  ADD COLUMN error           jsonb,
  ADD COLUMN first_delta_ms  integer,
  ADD COLUMN duration_ms     integer;

-- One rating per user per reply; PUT replaces it, DELETE removes it.
CREATE TABLE message_feedback (
  message_id     uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  user_id        text NOT NULL,
  rating         text NOT NULL CHECK (rating IN ('up', 'down')),
  reason         text,
  comment        text,
  updated_at_ms  bigint NOT NULL,
  PRIMARY KEY (message_id, user_id)
);
`,
  },
  {
    version: 4,
    name: "threads by the agent that answers them",
    sql: `
-- GET /api/threads?agent=<name>: an agent's threads, newest first. Partial: only the threads that
-- name an agent are in it.
CREATE INDEX threads_agent_recent ON threads ((metadata->>'agent'), created_at_ms DESC, id DESC)
  WHERE jsonb_typeof(metadata->'agent') = 'string';
`,
  },
  {
    version: 5,
    name: "feedback changes on their way to the analytics queue",
    sql: `
-- The latest change of each (reply, user)'s feedback, kept after a removal: its version only grows
-- (ClickHouse keeps the newest), and a change still marked unsent is sent again by a later request.
CREATE TABLE message_feedback_changes (
  message_id   uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  user_id      text NOT NULL,
  -- updated_at_ms of the change, strictly growing per (reply, user).
  version      bigint NOT NULL,
  -- The change as the analytics queue carries it, without the version.
  event        jsonb NOT NULL,
  -- NULL: sent. Else when any sender may send it: a little after the request that made it.
  due_at_ms    bigint,
  PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_feedback_changes_unsent ON message_feedback_changes (due_at_ms)
  WHERE due_at_ms IS NOT NULL;
`,
  },
  {
    version: 6,
    name: "threads can be archived",
    sql: `
-- NULL: not archived. Lists leave archived threads out unless asked (README, GET /api/threads).
ALTER TABLE threads ADD COLUMN archived_at_ms bigint;
`,
  },
  {
    version: 7,
    name: "erasure: thread tombstones and erasure records",
    sql: `
-- What an erasure did, and how far each tier is: who asked, when, for what, and counts. It keeps
-- no content: the subject is a thread id, a user id or the retention cutoff.
CREATE TABLE erasures (
  id                      uuid PRIMARY KEY,
  kind                    text NOT NULL CHECK (kind IN ('thread', 'user', 'retention')),
  subject                 text NOT NULL,
  requested_by            text NOT NULL,
  requested_at_ms         bigint NOT NULL,
  -- What it erased in PostgreSQL (rows, counted as they were deleted).
  threads                 integer NOT NULL DEFAULT 0,
  messages                integer NOT NULL DEFAULT 0,
  feedback                integer NOT NULL DEFAULT 0,
  redis_keys              integer NOT NULL DEFAULT 0,
  clickhouse_remaining    integer,
  -- 'postgres' → 'redis' → 'clickhouse' → 'settle' → 'verify' → 'done' (core/erasure-service.ts).
  stage                   text NOT NULL,
  postgres_done_at_ms     bigint,
  redis_done_at_ms        bigint,
  clickhouse_done_at_ms   bigint,
  completed_at_ms         bigint,
  due_at_ms               bigint NOT NULL,
  lease_until_ms          bigint NOT NULL DEFAULT 0,
  attempts                integer NOT NULL DEFAULT 0,
  last_error              text
);
CREATE INDEX erasures_due ON erasures (due_at_ms) WHERE completed_at_ms IS NULL;

-- A deleted thread's id, kept for good: a message of the thread still in flight (a queue, a
-- consumer's batch, a retry, a dead-letter redrive) finds it and is dropped, never stored again.
CREATE TABLE thread_tombstones (
  thread_id     uuid PRIMARY KEY,
  owner_id      text NOT NULL,
  erasure_id    uuid NOT NULL REFERENCES erasures (id),
  erased_at_ms  bigint NOT NULL
);
CREATE INDEX thread_tombstones_erasure ON thread_tombstones (erasure_id, thread_id);

-- Retention: the newest message of each thread, by the index history pages walk.
CREATE INDEX threads_created ON threads (created_at_ms);
`,
  },
];
