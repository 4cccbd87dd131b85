/** Threads: created and listed in PostgreSQL (they are few and must exist before messages). */
import { bestEffort } from "./best-effort.ts";
import {
  BadRequestError,
  ForbiddenError,
  PayloadTooLargeError,
  threadNotFound,
  unavailableAs,
} from "./errors.ts";
import { eventFrame } from "./events.ts";
import type { Fanout } from "./fanout.ts";
import type { HistoryReader } from "./history-reader.ts";
import { newId } from "./ids.ts";
import {
  isService,
  type Message,
  type Principal,
  type Thread,
  toEpochSeconds,
  toWire,
  toWireThread,
} from "./model.ts";
import type {
  Clock,
  Diagnostics,
  MessageCache,
  MessageRepository,
  RateLimiter,
  ThreadChange,
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
  /** Reads a thread's messages for an export (the hot tier and PostgreSQL, as history does). */
  readonly reader?: HistoryReader;
  /** Tells a thread's subscribers it changed (absent: they see it on their next read). */
  readonly fanout?: Fanout;
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

export type ExportFormat = "json" | "markdown";

/** What a part costs in the Lambda's answer, which carries the body as a JSON string. */
const answerBytes = (part: string): number => Buffer.byteLength(JSON.stringify(part), "utf8") - 2;

/** Messages read per page of an export. */
const EXPORT_PAGE = 100;

interface ExportWriter {
  /** Writes one message; answers the bytes it added. */
  add(message: Message): number;
  end(): string;
}

const jsonExport = (thread: Thread, exportedAt: string): ExportWriter => {
  const parts = [
    `{"thread":${JSON.stringify(toWireThread(thread))},"exported_at":"${exportedAt}","messages":[`,
  ];
  let count = 0;
  return {
    add(message) {
      const part = `${count++ === 0 ? "" : ","}${JSON.stringify(toWire(message))}`;
      parts.push(part);
      return answerBytes(part);
    },
    end: () => `${parts.join("")}]}`,
  };
};

const markdownExport = (thread: Thread, exportedAt: string): ExportWriter => {
  const parts = [`# ${thread.title ?? "Untitled thread"}\n\n_Exported ${exportedAt}_\n`];
  return {
    add(message) {
      const when = new Date(message.created_at_ms).toISOString().replace("T", " ").slice(0, 19);
      const state = message.state !== undefined && message.state !== "complete" ? ` (${message.state})` : "";
      const part = `\n---\n\n**${message.role}** · ${message.user_id} · ${when} UTC${state}\n\n${message.content}\n`;
      parts.push(part);
      return answerBytes(part);
    },
    end: () => parts.join(""),
  };
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
      : this.deps.threads.listByOwner(principal.userId, {
          ...keyset,
          ...(page.archived !== undefined ? { archived: page.archived } : {}),
        })
    ).catch(unavailableAs("Thread store unavailable"));
    const threads = rows.slice(0, page.limit);
    const last = threads.at(-1);
    return {
      threads,
      next_cursor: rows.length > page.limit && last !== undefined ? encodeThreadCursor(last) : null,
    };
  }

  /**
   * Renames, re-describes or archives a thread. The owner may change anything; a service
   * principal (an agent titling a thread) the title and metadata only. Subscribers get
   * `thread.updated`.
   */
  async update(principal: Principal, threadId: string, change: ThreadChange): Promise<Thread> {
    const thread = await this.deps.access.accessible(principal, threadId);
    if (change.archived !== undefined && thread.owner_id !== principal.userId) {
      throw new ForbiddenError("role_not_allowed", "only the thread's owner may archive it");
    }
    const updated = await this.deps.threads
      .update(threadId, change, this.deps.clock.now())
      .catch(unavailableAs("Thread store unavailable"));
    if (updated === null) throw threadNotFound();
    const subscribers = await bestEffort(
      this.deps.diagnostics,
      "could not update the cached thread",
      { threadId },
      () => this.deps.cache.updateThread(updated),
      [] as readonly string[],
    );
    if (this.deps.fanout !== undefined && subscribers.length > 0) {
      const frame = eventFrame("thread.updated", { thread: toWireThread(updated) });
      await this.deps.fanout.deliver(threadId, subscribers, frame);
    }
    return updated;
  }

  /**
   * The whole thread in seq order, read page by page (as history is) and written out as it is
   * read, up to `maxBytes` (a longer thread: 413, page the history instead).
   */
  async export(
    principal: Principal,
    threadId: string,
    format: ExportFormat,
    maxBytes: number,
  ): Promise<{ body: string; contentType: string; filename: string }> {
    const thread = await this.deps.access.accessible(principal, threadId);
    const reader = this.deps.reader;
    if (reader === undefined) throw new Error("ThreadService.export needs a HistoryReader");
    const exportedAt = new Date(this.deps.clock.now()).toISOString();
    const out = format === "json" ? jsonExport(thread, exportedAt) : markdownExport(thread, exportedAt);
    let bytes = 0;
    let after = 0;
    for (;;) {
      const { value } = await reader.read(threadId, { direction: "forward", after, limit: EXPORT_PAGE });
      for (const message of value.messages) {
        bytes += out.add(message);
        if (bytes > maxBytes) {
          throw new PayloadTooLargeError(
            "export_too_large",
            `the export exceeds ${maxBytes} bytes; page GET /api/threads/${threadId}/messages instead`,
          );
        }
      }
      const last = value.messages.at(-1);
      if (value.next_cursor === null || last === undefined) break;
      after = last.seq;
    }
    const stamp = exportedAt.slice(0, 10);
    return {
      body: out.end(),
      contentType: format === "json" ? "application/json; charset=utf-8" : "text/markdown; charset=utf-8",
      filename: `thread-${threadId}-${stamp}.${format === "json" ? "json" : "md"}`,
    };
  }

  async get(principal: Principal, threadId: string): Promise<Thread & { message_count: number }> {
    const thread = await this.deps.access.accessible(principal, threadId);
    const count = await this.deps.messages.count(threadId).catch(unavailableAs("Thread store unavailable"));
    return { ...thread, message_count: count };
  }
}
