/** A message by id, with its thread's owner: the hot tier's lookup first, else PostgreSQL. */
import { describeError, unavailableAs } from "./errors.ts";
import type { Diagnostics, MessageCache, MessageRepository, OwnedMessage } from "./ports.ts";

export interface MessageLookup {
  /** null: neither tier has it. */
  readonly found: OwnedMessage | null;
  /** Where it was found (or "database": the hot tier did not have it). */
  readonly source: "cache" | "database";
  /** False when the hot tier could not be asked (PostgreSQL alone answered). */
  readonly cacheAnswered: boolean;
}

export const lookupMessage = async (
  deps: {
    readonly cache: MessageCache;
    readonly messages: MessageRepository;
    readonly diagnostics: Diagnostics;
  },
  messageId: string,
): Promise<MessageLookup> => {
  let cacheAnswered = true;
  const cached = await deps.cache.getMessage(messageId).catch((error: unknown) => {
    cacheAnswered = false;
    deps.diagnostics.warn("cache unavailable for message lookup", { messageId, error: describeError(error) });
    return null;
  });
  if (cached !== null) return { found: cached, source: "cache", cacheAnswered };
  const found = await deps.messages.findById(messageId).catch(unavailableAs("Message store unavailable"));
  return { found, source: "database", cacheAnswered };
};
