/**
 * Thread records on the read and write paths: from the hot tier when it has the thread, else from
 * PostgreSQL — and then installed in the hot tier, with what the hot tier needs to know to take
 * over (the highest seq PostgreSQL has seen; that the state is restored, not new). Also who may
 * see a thread, and the admin's cache recovery.
 */
import { bestEffort } from "./best-effort.ts";
import { ForbiddenError, threadNotFound, unavailableAs } from "./errors.ts";
import { canAccessThread, isAdmin, type Principal, type Thread } from "./model.ts";
import type { Diagnostics, MessageCache, MessageRepository, ThreadRepository } from "./ports.ts";

export interface ThreadAccessDeps {
  readonly cache: MessageCache;
  readonly threads: ThreadRepository;
  readonly messages: MessageRepository;
  readonly diagnostics: Diagnostics;
}

export class ThreadAccess {
  constructor(
    private readonly deps: ThreadAccessDeps,
    /** How many of a thread's newest messages recovery loads into the hot tier. */
    private readonly historyCacheSize: number,
  ) {}

  /** The thread, or null when it does not exist. */
  async resolve(threadId: string): Promise<Thread | null> {
    const cached = await bestEffort(
      this.deps.diagnostics,
      "cache unavailable for thread lookup",
      { threadId },
      () => this.deps.cache.getThread(threadId),
      null,
    );
    return cached ?? this.install(threadId);
  }

  async accessible(principal: Principal, threadId: string): Promise<Thread> {
    const thread = await this.resolve(threadId);
    if (thread === null || !canAccessThread(principal, thread)) throw threadNotFound();
    return thread;
  }

  /** Reads the thread from PostgreSQL and installs it in the hot tier (if it can). */
  async install(threadId: string): Promise<Thread | null> {
    const found = await this.deps.threads
      .getForInstall(threadId)
      .catch(unavailableAs("Thread store unavailable"));
    if (found === null) return null;
    await bestEffort(
      this.deps.diagnostics,
      "could not install thread in cache",
      { threadId },
      () => this.deps.cache.install(found),
      undefined,
    );
    return found.thread;
  }

  /** Admin: install the thread and load its newest messages from PostgreSQL into the hot tier. */
  async recover(principal: Principal, threadId: string): Promise<{ backfilled: number }> {
    if (!isAdmin(principal)) throw new ForbiddenError("admin_required", "This route needs the admin role");
    const [found, page] = await Promise.all([
      this.deps.threads.getForInstall(threadId),
      this.deps.messages.history(threadId, { direction: "backward", limit: this.historyCacheSize }),
    ]).catch(unavailableAs("Database unavailable"));
    if (found === null) throw threadNotFound();
    await this.deps.cache
      .install(found)
      .then(() => this.deps.cache.warm(threadId, page.messages, page.next_cursor === null))
      .catch(unavailableAs("Cache unavailable"));
    return { backfilled: page.messages.length };
  }
}
