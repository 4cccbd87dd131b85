import { v5 as uuidv5, v7 as uuidv7 } from "uuid";

/** Namespace for message ids derived from a client's idempotency key (fixed forever). */
const MESSAGE_ID_NAMESPACE = "6f1d0c8e-3f5a-4b7e-9c1d-2a4e8b9f0c11";

/**
 * A retry with the same client message id must map to the same message everywhere, even after
 * the cache lost its idempotency key: the id is derived from (thread, author, client id), so the
 * durable tiers' unique key on the id absorbs the duplicate.
 */
export const messageIdFor = (
  threadId: string,
  authorId: string,
  clientMessageId: string | undefined,
): string =>
  clientMessageId === undefined
    ? uuidv7()
    : uuidv5(`${threadId}\n${authorId}\n${clientMessageId}`, MESSAGE_ID_NAMESPACE);

/** Time-ordered ids keep PostgreSQL's primary-key index appends local. */
export const newId = (): string => uuidv7();
