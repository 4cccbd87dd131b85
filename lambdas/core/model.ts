/**
 * Domain model of the message pipeline. Plain data only: no SDK, driver or framework types.
 * Field names of `Message` and `Thread` are the wire names of the product's HTTP contract.
 */

export const MESSAGE_ROLES = ["user", "assistant", "system"] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export type JsonObject = { [key: string]: unknown };

/**
 * Where a message stands. Messages posted whole are `complete` (and carry no `state` inside the
 * system: the edges say "complete"); an assistant reply that streams is opened `streaming` and
 * ends `complete`, `cancelled` or `error` (docs/streaming.md).
 */
export const MESSAGE_STATES = ["streaming", "complete", "cancelled", "error"] as const;
export type MessageState = (typeof MESSAGE_STATES)[number];

/** What the model used for a reply, as the agent reports it. */
export interface MessageUsage {
  readonly model?: string;
  readonly input_tokens?: number;
  readonly output_tokens?: number;
}

/** Why a reply ended in `error`, as the agent (or the idle timeout) reports it. */
export interface MessageFailure {
  readonly code?: string;
  readonly message?: string;
}

/** A chat message as clients see it and as every tier stores it. */
export interface Message {
  readonly id: string;
  readonly thread_id: string;
  /** Per-thread order; see `sequence.ts` for how it is allocated. */
  readonly seq: number;
  readonly role: MessageRole;
  /** The principal (`sub`) that posted the message. */
  readonly user_id: string;
  readonly content: string;
  readonly metadata: JsonObject;
  readonly client_message_id: string | null;
  /** Epoch seconds, as the product's existing clients expect. */
  readonly created_at: number;
  readonly created_at_ms: number;
  /** Only on streamed replies (absent: a message posted whole, `complete`). */
  readonly state?: MessageState;
  /** On reads of a reply still streaming: the last delta index its content includes (-1: none). */
  readonly delta_index?: number;
  /** How a streamed reply ended: "stop", "length", "cancelled", "timeout", "error", … */
  readonly finish_reason?: string | null;
  readonly usage?: MessageUsage | null;
  readonly error?: MessageFailure | null;
  /** Server-measured: open → first delta, and open → end of the stream. */
  readonly first_delta_ms?: number | null;
  readonly duration_ms?: number | null;
}

const STREAM_FIELDS = [
  "delta_index",
  "finish_reason",
  "usage",
  "error",
  "first_delta_ms",
  "duration_ms",
] as const;

/**
 * A streamed reply's fields in their canonical form and order: only those that have a value (a
 * message posted whole has none). Every tier stores and compares this form.
 */
export const streamFields = (
  m: Pick<Message, "state" | (typeof STREAM_FIELDS)[number]>,
): Partial<Message> => {
  if (m.state === undefined) return {};
  const fields: Record<string, unknown> = { state: m.state };
  for (const name of STREAM_FIELDS) {
    const value = m[name];
    if (value !== undefined && value !== null) fields[name] = value;
  }
  return fields as Partial<Message>;
};

/**
 * A message as clients get it: every message says its state; a streamed reply also says how it
 * ended (null while streaming) and what it used.
 */
export const toWire = (m: Message): Message & { state: MessageState } =>
  m.state === undefined
    ? { ...m, state: "complete" }
    : {
        ...m,
        finish_reason: m.finish_reason ?? null,
        usage: m.usage ?? null,
        error: m.error ?? null,
        first_delta_ms: m.first_delta_ms ?? null,
        duration_ms: m.duration_ms ?? null,
        state: m.state,
      };

export interface Thread {
  readonly id: string;
  readonly owner_id: string;
  readonly title: string | null;
  readonly metadata: JsonObject;
  readonly created_at: number;
  readonly created_at_ms: number;
  /** When the owner archived it (absent: not archived). */
  readonly archived_at_ms?: number;
}

/** A thread as clients get it: every thread says whether it is archived. */
export const toWireThread = <T extends Thread>(t: T): T & { archived: boolean } => ({
  ...t,
  archived: t.archived_at_ms !== undefined,
});

export const ROLE_CLAIMS = ["admin", "service"] as const;
export type PrincipalRole = (typeof ROLE_CLAIMS)[number];

/** Who is calling, as proven by a verified token. */
export interface Principal {
  readonly userId: string;
  readonly roles: readonly PrincipalRole[];
  /** When the token stops being valid (epoch ms): a WebSocket connection ends with it. */
  readonly expiresAt?: number;
}

export const isService = (p: Principal): boolean => p.roles.includes("service");
export const isAdmin = (p: Principal): boolean => p.roles.includes("admin");

/**
 * Users read and write only their own threads; a service principal (the AI agent) may act on any
 * thread. Admins get admin routes, not other users' threads.
 */
export const canAccessThread = (p: Principal, thread: Pick<Thread, "owner_id">): boolean =>
  isService(p) || thread.owner_id === p.userId;

/**
 * Where a thread's live stream stands (docs/architecture.md, "Gap-free resume"). The hot tier
 * numbers every message it makes visible with the next `pos` of the thread's current `epoch`; a
 * subscriber that has every pos up to its own resumes from there. A new epoch means the hot tier
 * lost the thread's state: the subscriber then catches up by seq from its `settled` cursor.
 */
export interface StreamPosition {
  readonly epoch: string;
  readonly pos: number;
}

/** A page of history in ascending `seq` order. */
export interface HistoryPage {
  readonly messages: Message[];
  /** Cursor for the next page in the same direction, or null when there is none. */
  readonly next_cursor: number | null;
  /** The stream position the page was read at (null: the hot tier could not say). */
  readonly epoch: string | null;
  readonly pos: number | null;
  /** Every message with `seq <= settled` is readable (sequence.ts: settledByTime). */
  readonly settled: number;
}

/** Which way a history query walks from its cursor. */
export type HistoryQuery =
  | { readonly direction: "backward"; readonly before?: number; readonly limit: number }
  | { readonly direction: "forward"; readonly after: number; readonly limit: number };

export const toEpochSeconds = (ms: number): number => Math.floor(ms / 1000);

/** One canonical serialisation so every tier stores byte-identical copies of a message. */
export const serializeMessage = (m: Message): string =>
  JSON.stringify({
    id: m.id,
    thread_id: m.thread_id,
    seq: m.seq,
    role: m.role,
    user_id: m.user_id,
    content: m.content,
    metadata: m.metadata,
    client_message_id: m.client_message_id,
    created_at: m.created_at,
    created_at_ms: m.created_at_ms,
    ...streamFields(m),
  });

export const serializeThread = (t: Thread): string =>
  JSON.stringify({
    id: t.id,
    owner_id: t.owner_id,
    title: t.title,
    metadata: t.metadata,
    created_at: t.created_at,
    created_at_ms: t.created_at_ms,
    ...(t.archived_at_ms !== undefined ? { archived_at_ms: t.archived_at_ms } : {}),
  });
