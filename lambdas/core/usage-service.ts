/**
 * A thread's totals (GET /api/threads/{id}/usage): its messages by role, its assistant replies by
 * state, the tokens they used and the feedback they got — as PostgreSQL holds them, so a message
 * accepted a moment ago counts once the persist consumer has stored it (typically milliseconds).
 * Who may ask: whoever may read the thread (its owner; a service principal).
 */
import { unavailableAs } from "./errors.ts";
import type { Principal } from "./model.ts";
import type { ThreadUsage, UsageRepository } from "./ports.ts";
import type { ThreadAccess } from "./thread-access.ts";

export class UsageService {
  constructor(
    private readonly deps: {
      readonly access: Pick<ThreadAccess, "accessible">;
      readonly usage: UsageRepository;
    },
  ) {}

  async threadUsage(principal: Principal, threadId: string): Promise<{ thread_id: string } & ThreadUsage> {
    await this.deps.access.accessible(principal, threadId);
    const usage = await this.deps.usage.threadUsage(threadId).catch(unavailableAs("Usage unavailable"));
    return { thread_id: threadId, ...usage };
  }
}
