import { createHash, randomBytes } from "node:crypto";
import { v5 as uuidv5, v7 as uuidv7 } from "uuid";
import type { Message } from "./model.ts";

/** Namespace for message ids derived from a client's idempotency key (fixed forever). */
const MESSAGE_ID_NAMESPACE = "6f1d0c8e-3f5a-4b7e-9c1d-2a4e8b9f0c11";

/**
 * A retry with the same client message id must map to the same message everywhere, even after
 * the cache lost its idempotency record: the id is derived from (thread, author, client id), so
 * the durable tiers' unique key on the id absorbs the duplicate.
 */
export const messageIdFor = (threadId: string, authorId: string, clientMessageId: string): string =>
  uuidv5(`${threadId}\n${authorId}\n${clientMessageId}`, MESSAGE_ID_NAMESPACE);

/**
 * The key a message is accepted under when its client gave none: every accept has one, so that a
 * try whose outcome is unknown (a 503 after a send that timed out) can be retried without
 * creating a second message. (The prefix only makes such ids recognisable; the id derived from
 * one also includes its author, so nobody else's key can collide with it.)
 */
export const serverClientMessageId = (): string => `srv:${uuidv7()}`;

/** The hot tier's idempotency key: client ids cannot contain "|", so it is unambiguous. */
export const idempotencyKey = (authorId: string, clientMessageId: string): string =>
  `${authorId}|${clientMessageId}`;

/**
 * What two tries of one client message id must agree on. A retry that differs is refused rather
 * than silently answered with the original.
 */
export const fingerprintOf = (m: Pick<Message, "role" | "content" | "metadata" | "state">): string =>
  createHash("sha256")
    // A streamed reply's content and metadata change as it ends: its tries agree on being one.
    .update(canonicalJson(m.state === undefined ? [m.role, m.content, m.metadata] : [m.role, "(stream)"]))
    .digest("base64url")
    .slice(0, 22);

/** JSON with object keys sorted at every level: PostgreSQL's jsonb gives keys back in its own order. */
const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );

/** Identifies one try of an accept (a try that repeats its own timed-out call is recognised). */
export const tryToken = (): string => randomBytes(9).toString("base64url");

/** Random epoch ids: a hot-tier state created anew gets one no client has seen. */
export const newEpoch = (): string => randomBytes(6).toString("base64url");

/** Time-ordered ids keep PostgreSQL's primary-key index appends local. */
export const newId = (): string => uuidv7();
