/**
 * WebSocket connections: who is connected (verified at $connect), which threads they follow, and
 * the catch-up a subscriber gets for what it missed.
 *
 * Subscribing joins the thread's subscriber set and reads the thread's stream position in one
 * atomic step, then reads the catch-up. A message becomes visible and reads the subscriber set in
 * one atomic step too (MessageCache.store), so every message is either visible before the
 * subscription (then it is in the catch-up) or sees the subscriber (then it is pushed live); some
 * arrive both ways, and clients drop repeats by id. The `subscribed` frame carries the position
 * the client resumes from: docs/architecture.md, "Gap-free resume".
 */
import {
  AppError,
  describeError,
  ServiceUnavailableError,
  threadNotFound,
  UnauthorizedError,
  unavailableAs,
} from "./errors.ts";
import { eventFrame, messageCreatedFrame } from "./events.ts";
import type { HistoryReader } from "./history-reader.ts";
import type { Principal, StreamPosition } from "./model.ts";
import type {
  Clock,
  Connection,
  ConnectionNotifier,
  ConnectionRegistry,
  Diagnostics,
  MessageCache,
  TokenVerifier,
} from "./ports.ts";
import type { ThreadAccess } from "./thread-access.ts";

export interface SubscriptionServiceDeps {
  readonly registry: ConnectionRegistry;
  readonly cache: MessageCache;
  readonly notifier: ConnectionNotifier;
  readonly verifier: TokenVerifier;
  readonly access: ThreadAccess;
  readonly reader: HistoryReader;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

export interface SubscriptionOptions {
  /** At most this many missed messages are replayed on subscribe; the rest is paged over HTTP. */
  readonly replayLimit: number;
}

const registryUnavailable = unavailableAs("Connection registry unavailable");

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
      .catch(registryUnavailable);
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
    const connection = await this.deps.registry.get(connectionId).catch(registryUnavailable);
    if (connection === null) {
      throw new AppError("unauthenticated", "connection_unknown", "Connection not registered; reconnect");
    }
    return connection;
  }

  /** Follows the thread from now on, then replays what was missed after `sinceSeq`. */
  async subscribe(
    connection: Connection,
    threadId: string,
    sinceSeq: number | undefined,
    requestId?: string,
  ): Promise<{ replayed: number; hasMore: boolean; position: StreamPosition }> {
    await this.deps.access.accessible(connection.principal, threadId);
    await this.deps.registry.subscribe(connection.connectionId, threadId).catch(registryUnavailable);
    const position = await this.follow(threadId, connection.connectionId);
    let replayed = 0;
    let nextCursor: number | null = null;
    if (sinceSeq !== undefined) {
      const { value: page } = await this.deps.reader.read(threadId, {
        direction: "forward",
        after: sinceSeq,
        limit: this.options.replayLimit,
      });
      for (const message of page.messages) {
        // In order, one at a time: a client applies them as they come.
        const frame = messageCreatedFrame(message, { replay: true });
        if ((await this.deps.notifier.send(connection.connectionId, frame)) === "gone") {
          await this.disconnect(connection.connectionId);
          return { replayed, hasMore: true, position };
        }
        replayed++;
      }
      nextCursor = page.next_cursor;
    }
    const hasMore = nextCursor !== null;
    await this.deps.notifier.send(
      connection.connectionId,
      eventFrame(
        "subscribed",
        {
          threadId,
          replayed,
          has_more: hasMore,
          ...(hasMore ? { next_cursor: nextCursor } : {}),
          epoch: position.epoch,
          pos: position.pos,
          watermark: position.watermark,
        },
        requestId,
      ),
    );
    return { replayed, hasMore, position };
  }

  /** Joins the subscriber set and reads the position atomically (installing the thread if needed). */
  private async follow(threadId: string, connectionId: string): Promise<StreamPosition> {
    const once = () => this.deps.cache.follow(threadId, connectionId).catch(registryUnavailable);
    const first = await once();
    if (first !== null) return first;
    if ((await this.deps.access.install(threadId)) === null) throw threadNotFound();
    const position = await once();
    if (position === null) throw new ServiceUnavailableError("Thread state unavailable; retry");
    return position;
  }

  async unsubscribe(connection: Connection, threadId: string, requestId?: string): Promise<void> {
    await this.deps.registry.unsubscribe(connection.connectionId, threadId).catch(registryUnavailable);
    await this.deps.notifier.send(connection.connectionId, eventFrame("unsubscribed", { threadId }, requestId));
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
