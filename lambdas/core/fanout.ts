/**
 * Pushes one frame to many WebSocket connections, bounded: at most `concurrency` calls at once,
 * each bounded by the notifier's own timeout, and none started after `budgetMs`. A connection that
 * API Gateway reports gone is removed from the registry.
 */
import pLimit from "p-limit";
import { describeError } from "./errors.ts";
import type { ConnectionNotifier, ConnectionRegistry, Diagnostics } from "./ports.ts";

export interface FanoutOptions {
  readonly concurrency: number;
  /** After this long no further delivery is started (the rest are counted as skipped). */
  readonly budgetMs: number;
}

export interface FanoutResult {
  sent: number;
  gone: number;
  failed: number;
  skipped: number;
}

export const emptyFanout = (): FanoutResult => ({ sent: 0, gone: 0, failed: 0, skipped: 0 });

export class Fanout {
  constructor(
    private readonly notifier: ConnectionNotifier,
    private readonly registry: ConnectionRegistry,
    private readonly options: FanoutOptions,
    private readonly diagnostics: Diagnostics,
  ) {}

  /** Delivers `frame` to the subscribers of `threadId`. */
  async deliver(threadId: string, connectionIds: readonly string[], frame: string): Promise<FanoutResult> {
    const result = emptyFanout();
    if (connectionIds.length === 0) return result;
    const deadline = performance.now() + this.options.budgetMs;
    const limit = pLimit(this.options.concurrency);
    await Promise.all(
      connectionIds.map((id) =>
        limit(async () => {
          if (performance.now() > deadline) {
            result.skipped++;
            return;
          }
          let outcome: Awaited<ReturnType<ConnectionNotifier["send"]>>;
          try {
            outcome = await this.notifier.send(id, frame);
          } catch (error) {
            result.failed++;
            this.diagnostics.warn("websocket delivery failed", {
              connectionId: id,
              error: describeError(error),
            });
            return;
          }
          if (outcome === "sent") {
            result.sent++;
            return;
          }
          result.gone++;
          // Also from this thread: the connection's own record may be gone already (expired).
          await Promise.all([this.registry.unsubscribe(id, threadId), this.registry.remove(id)]).catch(
            (error: unknown) => {
              this.diagnostics.warn("could not forget gone connection", {
                connectionId: id,
                error: describeError(error),
              });
            },
          );
        }),
      ),
    );
    return result;
  }
}
