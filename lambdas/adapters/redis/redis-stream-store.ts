/**
 * Streamed replies in the hot tier (docs/streaming.md): per reply a hash of counters and a string
 * of its deltas joined (APPEND: no rewrite of what is there), and per thread the set of replies
 * still streaming — all under the thread's hash tag, so each step is one script on one slot.
 */
import type { Message, MessageState } from "../../core/model.ts";
import { serializeMessage } from "../../core/model.ts";
import type {
  AppendResult,
  Clock,
  FinishResult,
  StreamLimits,
  StreamSnapshot,
  StreamStore,
} from "../../core/ports.ts";
import { queueBytes } from "../../core/queue-body.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { RedisClient } from "./client.ts";
import type { RedisKeys } from "./keys.ts";
import { type Scripts, STREAM_APPEND, STREAM_FINISH, STREAM_OPEN } from "./scripts.ts";

const FIELDS = ["st", "i", "base", "n", "b", "o", "fa", "la", "msg", "fin"] as const;
/** Ended replies listed per thread for resuming subscribers (the newest; older ones expire too). */
const ENDED_KEPT = 200;
/** How long an ended reply's state stays in the hot tier (repeats, resuming subscribers). */
const ENDED_TTL_SECONDS = 3600;

export class RedisStreamStore implements StreamStore {
  constructor(
    private readonly client: RedisClient,
    private readonly scripts: Scripts,
    private readonly keys: RedisKeys,
    private readonly guard: TierGuard,
    private readonly clock: Clock,
    /** How long a stream's state is kept (also after it ended: a repeated complete is answered). */
    private readonly ttlSeconds: number,
  ) {}

  open(opened: Message, ownerId: string | null, baseIndex: number): Promise<void> {
    const { thread_id: threadId, id } = opened;
    return this.guard.run(async () => {
      await this.scripts.run(
        STREAM_OPEN,
        [
          this.keys.stream(threadId, id),
          this.keys.streamContent(threadId, id),
          this.keys.threadStreams(threadId),
        ],
        [
          serializeMessage(opened),
          ownerId ?? "",
          baseIndex,
          this.clock.now(),
          this.ttlSeconds,
          id,
          opened.created_at_ms,
        ],
      );
      // The lookup by id serves the opened message until it ends (restored: it may be gone).
      if (ownerId === null) return;
      await this.client.set(
        this.keys.message(id),
        JSON.stringify({ o: ownerId, m: opened }),
        "EX",
        this.ttlSeconds,
        "NX",
      );
    });
  }

  append(
    threadId: string,
    messageId: string,
    delta: { index: number; text: string },
    limits: StreamLimits,
  ): Promise<AppendResult> {
    return this.guard.run(async () => {
      const [code, a] = (await this.scripts.run(
        STREAM_APPEND,
        [
          this.keys.stream(threadId, messageId),
          this.keys.streamContent(threadId, messageId),
          this.keys.threadSubscribers(threadId),
        ],
        [
          delta.index,
          delta.text,
          this.clock.now(),
          limits.idleTimeoutMs,
          limits.maxDeltas,
          limits.maxBytes,
          this.ttlSeconds,
          queueBytes(delta.text),
        ],
      )) as [number, unknown];
      switch (code) {
        case 0:
          return { kind: "missing" };
        case 1:
          return { kind: "appended", subscribers: (a as string[] | undefined) ?? [] };
        case 2:
          return { kind: "not_streaming", state: a as MessageState };
        case 3:
          return a === undefined
            ? { kind: "duplicate" }
            : { kind: "duplicate", resend: (a as string[] | undefined) ?? [] };
        case 4:
          return { kind: "out_of_order", expected: Number(a) };
        case 5:
          return { kind: "idle" };
        default:
          return { kind: "too_large" };
      }
    });
  }

  snapshot(threadId: string, messageId: string): Promise<StreamSnapshot | null> {
    return this.guard.run(async () => (await this.read(threadId, [messageId]))[0] ?? null);
  }

  openStreams(threadId: string): Promise<StreamSnapshot[]> {
    return this.guard.run(async () => {
      const ids = await this.client.smembers(this.keys.threadStreams(threadId));
      if (ids.length === 0) return [];
      const snapshots = await this.read(threadId, ids.sort());
      return snapshots.filter((s) => s.state === "streaming");
    });
  }

  finish(final: Message, ownerId: string, expectedIndex: number): Promise<FinishResult> {
    const { thread_id: threadId, id } = final;
    const json = serializeMessage(final);
    return this.guard.run(async () => {
      const [code, a, b, c] = (await this.scripts.run(
        STREAM_FINISH,
        [
          this.keys.stream(threadId, id),
          this.keys.streamContent(threadId, id),
          this.keys.threadStreams(threadId),
          this.keys.threadMessages(threadId),
          this.keys.threadSubscribers(threadId),
          this.keys.threadState(threadId),
          this.keys.threadEndedStreams(threadId),
        ],
        [
          expectedIndex.toFixed(0),
          json,
          final.state ?? "complete",
          final.seq.toFixed(0),
          this.ttlSeconds,
          id,
          ENDED_KEPT,
          Math.min(this.ttlSeconds, ENDED_TTL_SECONDS),
        ],
      )) as [number, unknown, unknown, unknown];
      switch (code) {
        case 0:
          return { kind: "missing" };
        case 1:
          await this.client.set(
            this.keys.message(id),
            JSON.stringify({ o: ownerId, m: final }),
            "EX",
            this.ttlSeconds,
          );
          return { kind: "finished", subscribers: (a as string[] | undefined) ?? [] };
        case 2: {
          const ended = typeof b === "string" && b !== "" ? (JSON.parse(b) as Message) : null;
          // The lookup by id is written beside the script (another slot): written again here, in
          // case the try that ended the stream failed before it did.
          if (ended !== null) {
            await this.client.set(
              this.keys.message(id),
              JSON.stringify({ o: ownerId, m: ended }),
              "EX",
              this.ttlSeconds,
            );
          }
          return {
            kind: "ended",
            state: a as MessageState,
            final: ended,
            subscribers: (c as string[] | undefined) ?? [],
          };
        }
        default:
          return { kind: "changed" };
      }
    });
  }

  endedSince(threadId: string, pos: number, limit: number): Promise<Message[]> {
    return this.guard.run(async () => {
      const ids = await this.client.zrangebyscore(
        this.keys.threadEndedStreams(threadId),
        pos,
        "+inf",
        "LIMIT",
        0,
        limit,
      );
      if (ids.length === 0) return [];
      const snapshots = await this.read(threadId, ids);
      return snapshots.flatMap((s) => (s.final === null ? [] : [s.final]));
    });
  }

  /** One round trip for any number of streams of one thread (one slot: a pipeline). */
  private async read(threadId: string, ids: readonly string[]): Promise<StreamSnapshot[]> {
    const pipeline = this.client.pipeline();
    for (const id of ids) {
      pipeline.hmget(this.keys.stream(threadId, id), ...FIELDS);
      pipeline.get(this.keys.streamContent(threadId, id));
    }
    const replies = (await pipeline.exec()) ?? [];
    const snapshots: StreamSnapshot[] = [];
    ids.forEach((id, n) => {
      const [hashError, hash] = replies[2 * n] ?? [null, null];
      const [contentError, content] = replies[2 * n + 1] ?? [null, null];
      if (hashError) throw hashError;
      if (contentError) throw contentError;
      const [st, i, base, count, bytes, o, fa, la, msg, fin] = hash as (string | null)[];
      if (st === null || st === undefined || msg === null || msg === undefined) return;
      snapshots.push({
        messageId: id,
        threadId,
        state: st as MessageState,
        deltaIndex: Number(i),
        content: (content as string | null) ?? "",
        baseIndex: Number(base),
        deltaCount: Number(count),
        bytes: Number(bytes),
        openedAtMs: Number(o),
        firstDeltaAtMs: fa === "0" || fa === null || fa === undefined ? null : Number(fa),
        lastAppendAtMs: Number(la),
        opened: JSON.parse(msg) as Message,
        final: fin === null || fin === undefined || fin === "" ? null : (JSON.parse(fin) as Message),
      });
    });
    return snapshots;
  }
}
