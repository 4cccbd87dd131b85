/**
 * WebSocket connections: who is connected (verified at $connect), which threads they follow, and
 * the catch-up a subscriber gets for what it missed since `sinceSeq`.
 */
import { AppError, describeError, UnauthorizedError, unavailableAs } from "./errors.ts";
import { eventFrame, messageCreatedFrame } from "./events.ts";
import type { MessageService } from "./message-service.ts";
import type { Principal } from "./model.ts";
import type {
  Clock,
  Connection,
  ConnectionNotifier,
  ConnectionRegistry,
  Diagnostics,
  TokenVerifier,
} from "./ports.ts";

export interface SubscriptionServiceDeps {
  readonly registry: ConnectionRegistry;
  readonly notifier: ConnectionNotifier;
  readonly verifier: TokenVerifier;
  readonly messageService: MessageService;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

export interface SubscriptionOptions {
  /** At most this many missed messages are replayed on subscribe; the rest is paged over HTTP. */
  readonly replayLimit: number;
  readonly retryAfterSeconds: number;
}

export class SubscriptionService {
  constructor(
    private readonly deps: SubscriptionServiceDeps,
    private readonly options: SubscriptionOptions,
  ) {}

  async connect(connectionId: string, token: string | undefined): Promise<Principal> {
    if (token === undefined || token === "")
      throw new UnauthorizedError("A token query parameter is required");
    const principal = await this.deps.verifier.verify(token);
    await this.deps.registry
      .register({ connectionId, principal, connectedAt: this.deps.clock.now() })
      .catch(unavailableAs("Connection registry unavailable", this.options.retryAfterSeconds));
    return principal;
  }

  async disconnect(connectionId: string): Promise<void> {
    await this.deps.registry.remove(connectionId).catch((error: unknown) => {
      this.deps.diagnostics.warn("could not remove connection", {
        connectionId,
        error: describeError(error),
      });
    });
  }

  /** The principal a connection was opened with; unknown connections must reconnect. */
  async connection(connectionId: string): Promise<Connection> {
    const connection = await this.deps.registry
      .get(connectionId)
      .catch(unavailableAs("Connection registry unavailable", this.options.retryAfterSeconds));
    if (connection === null) {
      throw new AppError("unauthenticated", "connection_unknown", "Connection not registered; reconnect");
    }
    return connection;
  }

  /**
   * Registers the subscription first, then replays what was missed, so that nothing accepted in
   * between is lost (it may arrive twice: clients keep the highest seq they have seen).
   */
  async subscribe(
    connection: Connection,
    threadId: string,
    sinceSeq: number | undefined,
    requestId?: string,
  ): Promise<{ replayed: number; hasMore: boolean }> {
    await this.deps.messageService.accessibleThread(connection.principal, threadId);
    await this.deps.registry
      .subscribe(connection.connectionId, threadId)
      .catch(unavailableAs("Connection registry unavailable", this.options.retryAfterSeconds));
    let replayed = 0;
    let hasMore = false;
    let nextCursor: number | null = null;
    if (sinceSeq !== undefined) {
      const { value: page } = await this.deps.messageService.readHistory(threadId, {
        direction: "forward",
        after: sinceSeq,
        limit: this.options.replayLimit,
      });
      for (const message of page.messages) {
        // In order, one at a time: a client applies them as they come.
        const frame = messageCreatedFrame(message, { replay: true });
        if ((await this.deps.notifier.send(connection.connectionId, frame)) === "gone") {
          await this.disconnect(connection.connectionId);
          return { replayed, hasMore: true };
        }
        replayed++;
      }
      hasMore = page.next_cursor !== null;
      nextCursor = page.next_cursor;
    }
    await this.deps.notifier.send(
      connection.connectionId,
      eventFrame(
        "subscribed",
        { threadId, replayed, has_more: hasMore, ...(hasMore ? { next_cursor: nextCursor } : {}) },
        requestId,
      ),
    );
    return { replayed, hasMore };
  }

  async unsubscribe(connection: Connection, threadId: string, requestId?: string): Promise<void> {
    await this.deps.registry
      .unsubscribe(connection.connectionId, threadId)
      .catch(unavailableAs("Connection registry unavailable", this.options.retryAfterSeconds));
    await this.deps.notifier.send(
      connection.connectionId,
      eventFrame("unsubscribed", { threadId }, requestId),
    );
  }

  async ping(connectionId: string, requestId?: string): Promise<void> {
    await this.deps.notifier.send(connectionId, eventFrame("pong", { at: this.deps.clock.now() }, requestId));
  }

  /** Tells one connection about a problem with its request. */
  async reject(connectionId: string, frame: string): Promise<void> {
    await this.deps.notifier.send(connectionId, frame).catch((error: unknown) => {
      this.deps.diagnostics.warn("could not send error frame", { connectionId, error: describeError(error) });
    });
  }
}
