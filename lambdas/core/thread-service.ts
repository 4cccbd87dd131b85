/** Threads: created and listed in PostgreSQL (they are few and must exist before messages). */
import { bestEffort } from "./best-effort.ts";
import { BadRequestError, ForbiddenError, unavailableAs } from "./errors.ts";
import { newId } from "./ids.ts";
import { isService, type Principal, type Thread, toEpochSeconds } from "./model.ts";
import type {
  Clock,
  Diagnostics,
  MessageCache,
  MessageRepository,
  RateLimiter,
  ThreadCursor,
  ThreadPage,
  ThreadRepository,
} from "./ports.ts";
import { admit } from "./rate-limit.ts";
import type { ThreadAccess } from "./thread-access.ts";
import type { CreateThreadInput, ThreadListInput } from "./validation.ts";
import { isUuid } from "./validation.ts";

export interface ThreadServiceDeps {
  readonly threads: ThreadRepository;
  readonly messages: MessageRepository;
  readonly cache: MessageCache;
  readonly access: ThreadAccess;
  readonly rateLimiter: RateLimiter;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

/** Opaque keyset cursor: base64url of `<created_at_ms>.<id>`. */
export const encodeThreadCursor = (t: ThreadCursor): string =>
  Buffer.from(`${t.created_at_ms}.${t.id}`, "utf8").toString("base64url");

export const decodeThreadCursor = (cursor: string): ThreadCursor => {
  const [ms, id] = Buffer.from(cursor, "base64url").toString("utf8").split(".");
  const createdAtMs = Number(ms);
  if (
    ms === undefined ||
    !/^\d{1,16}$/.test(ms) ||
    id === undefined ||
    !isUuid(id) ||
    !Number.isSafeInteger(createdAtMs)
  ) {
    throw new BadRequestError("invalid_cursor", "cursor is not one this API returned");
  }
  return { created_at_ms: createdAtMs, id };
};

export class ThreadService {
  constructor(private readonly deps: ThreadServiceDeps) {}

  async create(principal: Principal, input: CreateThreadInput): Promise<Thread> {
    await admit(this.deps.rateLimiter, principal, this.deps.diagnostics);
    const now = this.deps.clock.now();
    const thread = await this.deps.threads
      .create({
        id: newId(),
        owner_id: principal.userId,
        title: input.title,
        metadata: input.metadata,
        created_at: toEpochSeconds(now),
        created_at_ms: now,
      })
      .catch(unavailableAs("Thread store unavailable"));
    // A new thread: its hot state starts complete (nothing of it can exist anywhere else yet).
    await bestEffort(
      this.deps.diagnostics,
      "could not cache new thread",
      { threadId: thread.id },
      () => this.deps.cache.install({ thread, lastSeq: 0, genesis: true }),
      undefined,
    );
    return thread;
  }

  /**
   * The caller's threads; or, for a service principal that names an agent, the threads of any
   * owner that ask that agent to answer them (`metadata.agent`): how an agent finds its work.
   */
  async list(principal: Principal, page: ThreadListInput): Promise<ThreadPage> {
    if (page.agent !== undefined && !isService(principal)) {
      throw new ForbiddenError("role_not_allowed", "only a service principal may list threads by agent");
    }
    const after = page.cursor === undefined ? undefined : decodeThreadCursor(page.cursor);
    const keyset = { limit: page.limit + 1, ...(after ? { after } : {}) };
    const rows = await (page.agent !== undefined
      ? this.deps.threads.listByAgent(page.agent, keyset)
      : this.deps.threads.listByOwner(principal.userId, keyset)
    ).catch(unavailableAs("Thread store unavailable"));
    const threads = rows.slice(0, page.limit);
    const last = threads.at(-1);
    return {
      threads,
      next_cursor: rows.length > page.limit && last !== undefined ? encodeThreadCursor(last) : null,
    };
  }

  async get(principal: Principal, threadId: string): Promise<Thread & { message_count: number }> {
    const thread = await this.deps.access.accessible(principal, threadId);
    const count = await this.deps.messages.count(threadId).catch(unavailableAs("Thread store unavailable"));
    return { ...thread, message_count: count };
  }
}
