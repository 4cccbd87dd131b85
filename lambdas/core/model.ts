/**
 * Domain model of the message pipeline. Plain data only: no SDK, driver or framework types.
 * Field names of `Message` and `Thread` are the wire names of the product's HTTP contract.
 */

export const MESSAGE_ROLES = ["user", "assistant", "system"] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export type JsonObject = { [key: string]: unknown };

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
}

export interface Thread {
  readonly id: string;
  readonly owner_id: string;
  readonly title: string | null;
  readonly metadata: JsonObject;
  readonly created_at: number;
  readonly created_at_ms: number;
}

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
  });

export const serializeThread = (t: Thread): string =>
  JSON.stringify({
    id: t.id,
    owner_id: t.owner_id,
    title: t.title,
    metadata: t.metadata,
    created_at: t.created_at,
    created_at_ms: t.created_at_ms,
  });
