/**
 * WebSocket connections: who is connected (verified at $connect), which threads they follow, and
 * the catch-up a subscriber gets for what it missed (docs/architecture.md, "Gap-free resume").
 *
 * Subscribing joins the thread's subscriber set, reads the thread's stream position and — when
 * the client's own position is of the same epoch and recent enough — reads every message made
 * visible after it, in one atomic step. A message gets its position and reads the subscriber set
 * in one atomic step too (MessageCache.store). So every message is either before the subscription
 * (and replayed) or after it (and pushed live, with the next positions). A client whose position
 * cannot be replayed (a new epoch: the hot tier lost the thread) catches up by seq from its
 * `settled` cursor instead; repeats are dropped by id.
 */
import {
  AppError,
  describeError,
  ServiceUnavailableError,
  threadNotFound,
  UnauthorizedError,
  unavailableAs,
} from "./errors.ts";
import { endingFrame, eventFrame, messageCreatedFrame, messageFrame } from "./events.ts";
import type { HistoryReader, LiveView } from "./history-reader.ts";
import type { Message, Principal, StreamPosition } from "./model.ts";
import type {
  Clock,
  Connection,
  ConnectionNotifier,
  ConnectionRegistry,
  Diagnostics,
  Following,
  MessageCache,
  RateLimiter,
  TokenVerifier,
} from "./ports.ts";
import { admit } from "./rate-limit.ts";
import type { Settled } from "./sequence.ts";
import type { ThreadAccess } from "./thread-access.ts";

export interface SubscriptionServiceDeps {
  readonly registry: ConnectionRegistry;
  readonly cache: MessageCache;
  readonly notifier: ConnectionNotifier;
  readonly verifier: TokenVerifier;
  readonly access: ThreadAccess;
  readonly reader: HistoryReader;
  /** Replies still streaming: shown as they stand, and sent to a new subscriber. */
  readonly streams?: LiveView & {
    inProgress(threadId: string): Promise<Message[]>;
    endedSince(threadId: string, pos: number): Promise<Message[]>;
  };
  readonly rateLimiter: RateLimiter;
  readonly settled: Settled;
  readonly clock: Clock;
  readonly diagnostics: Diagnostics;
}

/** Where a subscriber resumes from: its stream position, and its settled seq to fall back on. */
export interface ResumeFrom {
  readonly position?: StreamPosition;
  readonly sinceSeq?: number;
}

export interface Subscribed {
  readonly replayed: number;
  readonly hasMore: boolean;
  /** True when the subscriber's position was replayed exactly (no catch-up by seq needed). */
  readonly recovered: boolean;
  readonly position: StreamPosition;
}

export interface SubscriptionOptions {
  /** At most this many missed messages are replayed on subscribe; the rest is paged over HTTP. */
  readonly replayLimit: number;
  readonly maxConnectionsPerUser: number;
  readonly maxSubscriptionsPerConnection: number;
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
    const open = await this.deps.registry
      .register({ connectionId, principal, connectedAt: this.deps.clock.now() })
      .catch(registryUnavailable);
    if (open > this.options.maxConnectionsPerUser) {
      await this.disconnect(connectionId);
      throw new AppError(
        "rate_limited",
        "too_many_connections",
        `At most ${this.options.maxConnectionsPerUser} open connections per user`,
      );
    }
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

  /**
   * The principal a connection was opened with; unknown connections must reconnect, and one whose
   * token has expired must reconnect with a new token (`close` ends it).
   */
  async connection(connectionId: string): Promise<Connection> {
    const connection = await this.deps.registry.get(connectionId).catch(registryUnavailable);
    if (connection === null) {
      throw new AppError("unauthenticated", "connection_unknown", "Connection not registered; reconnect");
    }
    const { expiresAt } = connection.principal;
    if (expiresAt !== undefined && this.deps.clock.now() >= expiresAt) {
      throw new AppError(
        "unauthenticated",
        "token_expired",
        "The connection's token has expired; reconnect with a new one",
      );
    }
    return connection;
  }

  /** Ends a connection from the server's side (its token expired): forgotten, and closed. */
  async close(connectionId: string): Promise<void> {
    await this.disconnect(connectionId);
    await this.deps.notifier.disconnect(connectionId).catch((error: unknown) => {
      this.deps.diagnostics.warn("could not close connection", { connectionId, error: describeError(error) });
    });
  }

  /** Follows the thread from now on, and replays what the subscriber missed. */
  async subscribe(
    connection: Connection,
    threadId: string,
    from: ResumeFrom,
    requestId?: string,
  ): Promise<Subscribed> {
    // Each subscribe may replay up to replayLimit messages: it takes from the user's budget.
    await admit(this.deps.rateLimiter, connection.principal, this.deps.diagnostics);
    await this.deps.access.accessible(connection.principal, threadId);
    const following = await this.deps.registry
      .subscribe(connection.connectionId, threadId)
      .catch(registryUnavailable);
    if (following > this.options.maxSubscriptionsPerConnection) {
      await this.deps.registry.unsubscribe(connection.connectionId, threadId).catch(registryUnavailable);
      throw new AppError(
        "rate_limited",
        "too_many_subscriptions",
        `At most ${this.options.maxSubscriptionsPerConnection} threads per connection`,
      );
    }
    // Taken before following: what it counts as settled was visible before the subscription.
    const settled = this.deps.settled();
    const { position, replay } = await this.follow(threadId, connection.connectionId, from.position ?? null);
    const send = (frame: string) => this.deps.notifier.send(connection.connectionId, frame);
    let replayed = 0;
    let nextCursor: number | null = null;
    // Replies still streaming are replayed as they stand (content so far, delta_index).
    const shown =
      replay === null
        ? null
        : ((await this.deps.streams?.live(
            threadId,
            replay.map((r) => r.message),
          )) ?? replay.map((r) => r.message));
    const frames =
      replay !== null
        ? replay.map(({ message, pos }, i) =>
            messageCreatedFrame(shown?.[i] ?? message, { replay: true, epoch: position.epoch, pos }),
          )
        : from.sinceSeq !== undefined
          ? await this.catchUp(threadId, from.sinceSeq).then(({ messages, next_cursor }) => {
              nextCursor = next_cursor;
              return messages.map((message) => messageCreatedFrame(message, { replay: true }));
            })
          : [];
    for (const frame of frames) {
      // In order, one at a time: a client applies them as they come.
      if ((await send(frame)) === "gone") {
        await this.disconnect(connection.connectionId);
        return { replayed, hasMore: true, recovered: false, position };
      }
      replayed++;
    }
    // Replies that ended since the subscriber's position (it may have missed the live frame):
    // their final form, which replaces what the subscriber has for that id.
    const since = from.position?.epoch === position.epoch ? from.position.pos : null;
    for (const final of since === null
      ? []
      : ((await this.deps.streams?.endedSince(threadId, since)) ?? [])) {
      if ((await send(endingFrame(final, { replay: true }))) === "gone") {
        await this.disconnect(connection.connectionId);
        return { replayed, hasMore: true, recovered: false, position };
      }
    }
    // Replies still streaming, with their content so far and the last delta index in it: the
    // subscriber joined before reading them, so every later delta reaches it live (it applies a
    // delta only when its index is the next one: those the snapshot holds already are dropped).
    for (const message of (await this.deps.streams?.inProgress(threadId)) ?? []) {
      if ((await send(messageFrame("message.snapshot", message, { replay: true }))) === "gone") {
        await this.disconnect(connection.connectionId);
        return { replayed, hasMore: true, recovered: false, position };
      }
    }
    const hasMore = nextCursor !== null;
    await send(
      eventFrame(
        "subscribed",
        {
          threadId,
          recovered: replay !== null,
          replayed,
          has_more: hasMore,
          ...(hasMore ? { next_cursor: nextCursor } : {}),
          epoch: position.epoch,
          pos: position.pos,
          settled,
        },
        requestId,
      ),
    );
    return { replayed, hasMore, recovered: replay !== null, position };
  }

  private async catchUp(threadId: string, sinceSeq: number) {
    const { value } = await this.deps.reader.read(threadId, {
      direction: "forward",
      after: sinceSeq,
      limit: this.options.replayLimit,
    });
    return value;
  }

  /** Joins the subscriber set and reads the position atomically (installing the thread if needed). */
  private async follow(
    threadId: string,
    connectionId: string,
    since: StreamPosition | null,
  ): Promise<Following> {
    const once = () =>
      this.deps.cache
        .follow(threadId, connectionId, since, this.options.replayLimit)
        .catch(registryUnavailable);
    const first = await once();
    if (first !== null) return first;
    if ((await this.deps.access.install(threadId)) === null) throw threadNotFound();
    const following = await once();
    if (following === null) throw new ServiceUnavailableError("Thread state unavailable; retry");
    return following;
  }

  async unsubscribe(connection: Connection, threadId: string, requestId?: string): Promise<void> {
    await this.deps.registry.unsubscribe(connection.connectionId, threadId).catch(registryUnavailable);
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
