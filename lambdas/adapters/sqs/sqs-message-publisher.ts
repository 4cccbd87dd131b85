/**
 * The persist queue: SendMessage is the accept path's durability point.
 *
 * Sends that are in flight at the same moment in one process are coalesced into SendMessageBatch
 * calls (up to 10 entries, within the request size limit): each caller still learns the fate of its
 * own entry, and its promise settles only once SQS has confirmed that entry. An SDK call costs far
 * more CPU than an entry in a batch (scripts/bench), so this matters wherever one process serves
 * concurrent requests (the local stack, a container). In Lambda an environment serves one request
 * at a time: every batch holds one message and is sent as a plain SendMessage, one event-loop turn
 * later than it would otherwise be.
 */
import type { MessagePublisher, PersistEnvelope } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import { batchRequests, RejectedEntriesError } from "./batch.ts";
import { sqsBody } from "./body.ts";
import type { SqsCalls } from "./sqs-calls.ts";

interface Pending {
  readonly body: string;
  readonly bytes: number;
  readonly delaySeconds: number | undefined;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class SqsMessagePublisher implements MessagePublisher {
  private pending: Pending[] = [];

  constructor(
    private readonly sqs: SqsCalls,
    private readonly queueUrl: string,
    private readonly guard: TierGuard,
  ) {}

  publish(envelope: PersistEnvelope, options?: { delaySeconds?: number }): Promise<void> {
    const body = sqsBody(envelope);
    const delaySeconds = options?.delaySeconds;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ body, bytes: Buffer.byteLength(body), delaySeconds, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  /** Sends everything queued during this event-loop turn, in as few calls as the limits allow. */
  private flush(): void {
    const items = this.pending;
    this.pending = [];
    for (const group of batchRequests(items, (item) => item.bytes)) void this.send(group);
  }

  private async send(group: Pending[]): Promise<void> {
    const [only] = group;
    if (group.length === 1 && only !== undefined) {
      await this.guard
        .run(() =>
          this.sqs.sendMessage({
            QueueUrl: this.queueUrl,
            MessageBody: only.body,
            ...(only.delaySeconds !== undefined ? { DelaySeconds: only.delaySeconds } : {}),
          }),
        )
        .then(() => only.resolve(), only.reject);
      return;
    }
    try {
      const result = await this.guard.run(() =>
        this.sqs.sendMessageBatch({
          QueueUrl: this.queueUrl,
          Entries: group.map((item, i) => ({
            Id: String(i),
            MessageBody: item.body,
            ...(item.delaySeconds !== undefined ? { DelaySeconds: item.delaySeconds } : {}),
          })),
        }),
      );
      const succeeded = new Set((result.Successful ?? []).map((s) => s.Id));
      const failed = new Map((result.Failed ?? []).map((f) => [f.Id, f]));
      group.forEach((item, i) => {
        if (succeeded.has(String(i))) {
          item.resolve();
          return;
        }
        const failure = failed.get(String(i));
        item.reject(
          new RejectedEntriesError(
            `persist queue did not take the message: ${failure?.Code ?? "no answer for this entry"} ${failure?.Message ?? ""}`,
            failure?.SenderFault === true,
          ),
        );
      });
    } catch (error) {
      for (const item of group) item.reject(error);
    }
  }

  ping(): Promise<void> {
    return this.guard.run(() => this.sqs.ping(this.queueUrl));
  }
}
