/**
 * Composition root: builds each client and service once per process (Lambda cold start), lazily,
 * so a function only connects to the tiers it uses. Handlers ask for services; nothing else
 * constructs a client. ClickHouse lives in analytics-container.ts, so that only the functions that
 * use it carry its client in their bundle.
 */

import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type pg from "pg";
import {
  ApiGatewayConnectionNotifier,
  createManagementApiClient,
} from "../adapters/apigateway/api-gateway-connection-notifier.ts";
import { sdkConnectionsApi, signedConnectionsApi } from "../adapters/apigateway/connections-api.ts";
import { JoseTokenVerifier } from "../adapters/auth/jose-token-verifier.ts";
import { SignedHttp } from "../adapters/aws/signed-http.ts";
import { PgErasureRepository } from "../adapters/postgres/pg-erasure-repository.ts";
import { PgFeedbackRepository } from "../adapters/postgres/pg-feedback-repository.ts";
import { PgMessageRepository } from "../adapters/postgres/pg-message-repository.ts";
import { PgThreadRepository } from "../adapters/postgres/pg-thread-repository.ts";
import { PgUsageRepository } from "../adapters/postgres/pg-usage-repository.ts";
import { createPgPool, isPgOutage } from "../adapters/postgres/pool.ts";
import {
  createRedisClient,
  isRedisOutage,
  type RedisClient,
  redisCommandNotSent,
} from "../adapters/redis/client.ts";
import { RedisKeys } from "../adapters/redis/keys.ts";
import { RedisConnectionRegistry } from "../adapters/redis/redis-connection-registry.ts";
import { RedisMessageCache } from "../adapters/redis/redis-message-cache.ts";
import { RedisRateLimiter } from "../adapters/redis/redis-rate-limiter.ts";
import { RedisStreamStore } from "../adapters/redis/redis-stream-store.ts";
import { RedisThreadEraser } from "../adapters/redis/redis-thread-eraser.ts";
import { Scripts } from "../adapters/redis/scripts.ts";
import { TierGuard } from "../adapters/resilience/tier-guard.ts";
import { readSecretJson } from "../adapters/secrets.ts";
import { createSqsClient, isAwsOutage } from "../adapters/sqs/client.ts";
import { SqsAnalyticsPublisher } from "../adapters/sqs/sqs-analytics-publisher.ts";
import { type SqsCalls, sdkSqsCalls, signedSqsCalls } from "../adapters/sqs/sqs-calls.ts";
import { SqsErasureQueue } from "../adapters/sqs/sqs-erasure-queue.ts";
import { SqsFeedbackPublisher } from "../adapters/sqs/sqs-feedback-publisher.ts";
import { SqsMessagePublisher } from "../adapters/sqs/sqs-message-publisher.ts";
import { SqsRetryScheduler } from "../adapters/sqs/sqs-retry-scheduler.ts";
import { Acceptor } from "../core/acceptor.ts";
import { CommitWriter, type DurableWriter, QueueFirstWriter } from "../core/durable-writers.ts";
import { type ErasureDeps, type ErasureOptions, ErasureService } from "../core/erasure-service.ts";
import type { Tier } from "../core/errors.ts";
import { Fanout } from "../core/fanout.ts";
import { FeedbackService } from "../core/feedback-service.ts";
import { HistoryReader } from "../core/history-reader.ts";
import { OutboxRelay } from "../core/outbox-relay.ts";
import { PersistService } from "../core/persist-service.ts";
import type { Clock } from "../core/ports.ts";
import { unlimited } from "../core/rate-limit.ts";
import { settledNow } from "../core/sequence.ts";
import { type StreamOptions, StreamService } from "../core/stream-service.ts";
import { SubscriptionService } from "../core/subscription-service.ts";
import { ThreadAccess } from "../core/thread-access.ts";
import { ThreadService } from "../core/thread-service.ts";
import { UsageService } from "../core/usage-service.ts";
import type { Limits } from "../core/validation.ts";
import { AdmissionGate, LoadMonitor } from "./admission.ts";
import { config } from "./config.ts";
import { Metric } from "./metric-names.ts";
import { once } from "./once.ts";
import { diagnostics, logger, metrics } from "./telemetry.ts";

export const clock: Clock = { now: () => Date.now() };

/** Clients opened by this process, for a clean shutdown (local stack, tests). Lambda never calls it. */
export const closers: (() => Promise<unknown>)[] = [];

export const closeClients = async (): Promise<void> => {
  const pending = closers.splice(0);
  await Promise.allSettled(pending.map((close) => close()));
};

/** This process's event-loop lag while it serves requests (runtime/admission.ts). */
export const loadMonitor = once(
  () =>
    new LoadMonitor({
      maxLagMs: config().OVERLOAD_LAG_MS,
      // Half the admission limit: with that many in flight, timeouts are this process's queue.
      maxInFlight: Math.ceil(config().ADMISSION_MAX_INFLIGHT / 2),
    }),
);

/** Sheds accepts and deltas when this process is overloaded. */
export const admission = once(
  () =>
    new AdmissionGate(loadMonitor(), {
      maxInFlight: config().ADMISSION_MAX_INFLIGHT,
      maxLagMs: config().OVERLOAD_LAG_MS,
      retryAfterSeconds: config().OVERLOAD_RETRY_AFTER_SECONDS,
    }),
);

export const guard = (
  tier: Tier,
  isOutage: (e: unknown) => boolean,
  timeoutMs?: number,
  wasNotSent?: (e: unknown) => boolean,
): TierGuard => {
  const cfg = config();
  const g = new TierGuard(
    tier,
    {
      failureThreshold: cfg.BREAKER_FAILURE_THRESHOLD,
      halfOpenAfterMs: cfg.BREAKER_HALF_OPEN_AFTER_MS,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      overloaded: () => loadMonitor().overloaded(),
    },
    isOutage,
    wasNotSent,
  );
  g.onStateChange((state) => {
    logger.warn("circuit breaker state changed", { tier, state });
    if (state === "open")
      metrics.singleMetric().addDimension("Tier", tier).addMetric(Metric.BreakerOpened, MetricUnit.Count, 1);
  });
  return g;
};

export const limits = once(
  (): Limits => ({
    maxMessageBytes: config().MAX_MESSAGE_BYTES,
    maxMetadataBytes: config().MAX_METADATA_BYTES,
    maxTitleLength: config().MAX_TITLE_LENGTH,
    maxPageSize: config().MAX_PAGE_SIZE,
    defaultPageSize: config().DEFAULT_PAGE_SIZE,
  }),
);

// ---------------------------------------------------------------- clients

/** REDIS_URL, with the AUTH user and password from REDIS_AUTH_SECRET_ARN when it is set. */
const redisUrl = async (): Promise<string> => {
  const cfg = config();
  if (cfg.REDIS_AUTH_SECRET_ARN === undefined) return cfg.REDIS_URL;
  const secret = await readSecretJson(cfg.REDIS_AUTH_SECRET_ARN);
  const url = new URL(cfg.REDIS_URL);
  url.username = encodeURIComponent(String(secret.username ?? "default"));
  url.password = encodeURIComponent(String(secret.password ?? ""));
  return url.toString();
};

export const redisClient = once(async (): Promise<RedisClient> => {
  const cfg = config();
  const client = createRedisClient({
    url: await redisUrl(),
    cluster: cfg.REDIS_CLUSTER,
    connectTimeoutMs: cfg.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeoutMs: cfg.REDIS_COMMAND_TIMEOUT_MS,
  });
  let lastLogged = 0;
  client.on("error", (error: Error) => {
    // Reconnect attempts repeat the same error; once per 10 s is enough for the logs.
    if (Date.now() - lastLogged > 10_000) {
      lastLogged = Date.now();
      logger.warn("redis connection error", { error: error.message });
    }
  });
  closers.push(async () => client.disconnect());
  return client;
});

const redisGuard = once(() =>
  guard("redis", isRedisOutage, config().REDIS_COMMAND_TIMEOUT_MS * 2, redisCommandNotSent),
);
const redisKeys = once(() => new RedisKeys(config().REDIS_KEY_PREFIX));
const redisScripts = once(async () => new Scripts(await redisClient()));

export const pgPool = once(async (): Promise<pg.Pool> => {
  const cfg = config();
  const onError = (error: Error): void =>
    logger.warn("idle PostgreSQL connection failed", { error: error.message });
  const common = {
    ssl: cfg.DATABASE_SSL,
    max: cfg.PG_POOL_MAX,
    connectTimeoutMs: cfg.PG_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: cfg.PG_STATEMENT_TIMEOUT_MS,
    applicationName: `chat-pipeline-${cfg.APP_ENV}`,
  };
  const track = (pool: pg.Pool): pg.Pool => {
    closers.push(() => pool.end());
    return pool;
  };
  if (cfg.DATABASE_URL !== undefined) {
    return track(createPgPool({ ...common, connectionString: cfg.DATABASE_URL }, onError));
  }
  const secret = await readSecretJson(cfg.DATABASE_SECRET_ARN as string);
  return track(
    createPgPool(
      {
        ...common,
        host: cfg.DATABASE_HOST as string,
        port: Number(secret.port ?? 5432),
        user: String(secret.username),
        password: String(secret.password),
        database: cfg.DATABASE_NAME,
      },
      onError,
    ),
  );
});

const pgGuard = once(() => guard("postgres", isPgOutage));
const sqsClient = once(() => {
  const client = createSqsClient({ timeoutMs: config().SQS_TIMEOUT_MS });
  closers.push(async () => client.destroy());
  return client;
});
const sqsGuard = once(() => guard("sqs", isAwsOutage));

/** Where the signed transport sends SQS calls: the SDK's endpoint variables, else the SDK's rules. */
const sqsEndpoint = async (client: SQSClient): Promise<URL> => {
  const custom = config().AWS_ENDPOINT_URL_SQS ?? config().AWS_ENDPOINT_URL;
  if (custom !== undefined) return new URL(custom);
  const { region, useFipsEndpoint, useDualstackEndpoint, endpointProvider } = client.config;
  return endpointProvider(
    { Region: await region(), UseFIPS: await useFipsEndpoint(), UseDualStack: await useDualstackEndpoint() },
    {},
  ).url;
};

/** The persist queue's calls on the accept path: signed requests, or the SDK (ACCEPT_AWS_TRANSPORT). */
const acceptSqsCalls = once((): SqsCalls => {
  const client = sqsClient();
  if (config().ACCEPT_AWS_TRANSPORT === "sdk") return sdkSqsCalls(client);
  const http = new SignedHttp({
    service: "sqs",
    region: client.config.region,
    credentials: client.config.credentials,
    endpoint: () => sqsEndpoint(client),
    timeoutMs: config().SQS_TIMEOUT_MS,
    maxAttempts: 2,
  });
  closers.push(async () => http.close());
  return signedSqsCalls(http);
});

// ---------------------------------------------------------------- ports

export const cache = once(async () => {
  const cfg = config();
  return new RedisMessageCache(await redisClient(), await redisScripts(), redisKeys(), redisGuard(), clock, {
    historySize: cfg.HISTORY_CACHE_SIZE,
    ttlSeconds: cfg.CACHE_TTL_SECONDS,
    idempotencyTtlSeconds: cfg.IDEMPOTENCY_TTL_SECONDS,
    persistBoundMs: cfg.PERSIST_BOUND_SECONDS * 1000,
    leaseMs: cfg.ACCEPT_LEASE_SECONDS * 1000,
    logSize: cfg.REPLAY_LIMIT,
  });
});

/** The settled cursor every component reports (sequence.ts). */
const settled = once(() => settledNow(clock, config().PERSIST_BOUND_SECONDS * 1000));

export const registry = once(
  async () =>
    new RedisConnectionRegistry(
      await redisClient(),
      redisKeys(),
      redisGuard(),
      config().CONNECTION_TTL_SECONDS,
    ),
);

const rateLimiter = once(async () => {
  const cfg = config();
  if (cfg.RATE_LIMIT_PER_SECOND === 0) return unlimited;
  return new RedisRateLimiter(await redisScripts(), redisKeys(), redisGuard(), {
    perSecond: cfg.RATE_LIMIT_PER_SECOND,
    burst: cfg.RATE_LIMIT_BURST,
  });
});

export const messageRepository = once(async () => new PgMessageRepository(await pgPool(), pgGuard()));
export const threadRepository = once(async () => new PgThreadRepository(await pgPool(), pgGuard()));
export const publisher = once(
  () => new SqsMessagePublisher(acceptSqsCalls(), config().PERSIST_QUEUE_URL, sqsGuard()),
);
const analyticsPublisher = once(
  () => new SqsAnalyticsPublisher(sqsClient(), config().ANALYTICS_QUEUE_URL, sqsGuard()),
);

export const notifier = once(() => {
  const cfg = config();
  if (cfg.WEBSOCKET_API_ENDPOINT === undefined) {
    throw new Error("WEBSOCKET_API_ENDPOINT is required by the HTTP and WebSocket functions");
  }
  const client = createManagementApiClient(cfg.WEBSOCKET_API_ENDPOINT, cfg.WEBSOCKET_TIMEOUT_MS);
  closers.push(async () => client.destroy());
  if (cfg.ACCEPT_AWS_TRANSPORT === "sdk")
    return new ApiGatewayConnectionNotifier(sdkConnectionsApi(client), guard("websocket", isAwsOutage));
  const http = new SignedHttp({
    service: "execute-api",
    region: client.config.region,
    credentials: client.config.credentials,
    endpoint: new URL(cfg.WEBSOCKET_API_ENDPOINT),
    timeoutMs: cfg.WEBSOCKET_TIMEOUT_MS,
    // One try per delivery, as the SDK client is configured: a slow connection is not retried.
    maxAttempts: 1,
    maxSockets: 64,
  });
  closers.push(async () => http.close());
  return new ApiGatewayConnectionNotifier(signedConnectionsApi(http), guard("websocket", isAwsOutage));
});

const verifier = once(() => {
  const cfg = config();
  return new JoseTokenVerifier({
    ...(cfg.JWT_SECRET !== undefined ? { secret: cfg.JWT_SECRET } : {}),
    ...(cfg.JWT_JWKS_URL !== undefined ? { jwksUrl: cfg.JWT_JWKS_URL } : {}),
    ...(cfg.JWT_ISSUER !== undefined ? { issuer: cfg.JWT_ISSUER } : {}),
    ...(cfg.JWT_AUDIENCE !== undefined ? { audience: cfg.JWT_AUDIENCE } : {}),
    rolesClaim: cfg.JWT_ROLES_CLAIM,
    clockToleranceSeconds: cfg.JWT_CLOCK_TOLERANCE_SECONDS,
  });
});
export const tokenVerifier = verifier;

// ---------------------------------------------------------------- services

const fanout = once(
  async () =>
    new Fanout(
      notifier(),
      await registry(),
      { concurrency: config().FANOUT_CONCURRENCY, budgetMs: config().FANOUT_BUDGET_MS },
      diagnostics,
    ),
);

export const threadAccess = once(async () => {
  // Side by side: in AWS the Redis and database clients each wait for a secret at cold start.
  const [messageCache, threads, messages] = await Promise.all([
    cache(),
    threadRepository(),
    messageRepository(),
  ]);
  return new ThreadAccess(
    { cache: messageCache, threads, messages, diagnostics },
    config().HISTORY_CACHE_SIZE,
  );
});

export const historyReader = once(
  async () =>
    new HistoryReader({
      live: await streamService(),
      cache: await cache(),
      messages: await messageRepository(),
      access: await threadAccess(),
      settled: settled(),
      diagnostics,
    }),
);

/** The one difference between the accept modes: where a message becomes durable. */
const durableWriter = once(async (): Promise<DurableWriter> => {
  const messages = await messageRepository();
  return config().ACCEPT_MODE === "sync"
    ? new CommitWriter(messages)
    : new QueueFirstWriter({ publisher: publisher(), messages, diagnostics });
});

export const acceptor = once(async () => {
  const [messageCache, messages, access, writer, push, limiter] = await Promise.all([
    cache(),
    messageRepository(),
    threadAccess(),
    durableWriter(),
    fanout(),
    rateLimiter(),
  ]);
  return new Acceptor({
    cache: messageCache,
    messages,
    access,
    writer,
    fanout: push,
    rateLimiter: limiter,
    clock,
    settled: settled(),
    diagnostics,
  });
});

export const threadService = once(
  async () =>
    new ThreadService({
      threads: await threadRepository(),
      messages: await messageRepository(),
      cache: await cache(),
      access: await threadAccess(),
      reader: await historyReader(),
      ...(config().WEBSOCKET_API_ENDPOINT !== undefined ? { fanout: await fanout() } : {}),
      rateLimiter: await rateLimiter(),
      clock,
      diagnostics,
    }),
);

export const subscriptionService = once(
  async () =>
    new SubscriptionService(
      {
        registry: await registry(),
        cache: await cache(),
        notifier: notifier(),
        verifier: verifier(),
        access: await threadAccess(),
        reader: await historyReader(),
        streams: await streamService(),
        rateLimiter: await rateLimiter(),
        settled: settled(),
        clock,
        diagnostics,
      },
      {
        replayLimit: config().REPLAY_LIMIT,
        maxConnectionsPerUser: config().MAX_CONNECTIONS_PER_USER,
        maxSubscriptionsPerConnection: config().MAX_SUBSCRIPTIONS_PER_CONNECTION,
      },
    ),
);

export const retryPolicy = () => ({
  baseDelaySeconds: config().RETRY_BASE_DELAY_SECONDS,
  maxDelaySeconds: config().RETRY_MAX_DELAY_SECONDS,
});

export const streamOptions = once(
  (): StreamOptions => ({
    idleTimeoutMs: config().STREAM_IDLE_TIMEOUT_SECONDS * 1000,
    maxDeltaBytes: config().STREAM_MAX_DELTA_BYTES,
    maxDeltas: config().STREAM_MAX_DELTAS,
    maxBytes: config().STREAM_MAX_BYTES,
  }),
);

const streamStore = once(
  async () =>
    new RedisStreamStore(
      await redisClient(),
      await redisScripts(),
      redisKeys(),
      redisGuard(),
      clock,
      config().CACHE_TTL_SECONDS,
    ),
);

export const streamService = once(async () => {
  const [streams, messageCache, messages] = await Promise.all([streamStore(), cache(), messageRepository()]);
  return new StreamService(
    {
      streams,
      cache: messageCache,
      messages,
      publisher: publisher(),
      ...(config().WEBSOCKET_API_ENDPOINT !== undefined ? { fanout: await fanout() } : {}),
      clock,
      diagnostics,
    },
    streamOptions(),
  );
});

export const persistService = once(
  async () =>
    new PersistService(
      {
        streams: await streamService(),
        messages: await messageRepository(),
        analytics: analyticsPublisher(),
        cache: await cache(),
        // Where the WebSocket API is known, messages made visible late are pushed live.
        ...(config().WEBSOCKET_API_ENDPOINT !== undefined ? { fanout: await fanout() } : {}),
        settled: settled(),
        clock,
        diagnostics,
      },
      retryPolicy(),
    ),
);

export const outboxRelay = once(
  async () =>
    new OutboxRelay(
      {
        messages: await messageRepository(),
        analytics: analyticsPublisher(),
        cache: await cache(),
        ...(config().WEBSOCKET_API_ENDPOINT !== undefined ? { fanout: await fanout() } : {}),
        settled: settled(),
        diagnostics,
      },
      config().OUTBOX_BATCH_SIZE,
    ),
);

export const retryScheduler = once(() => ({
  persist: new SqsRetryScheduler(sqsClient(), config().PERSIST_QUEUE_URL),
  analytics: new SqsRetryScheduler(sqsClient(), config().ANALYTICS_QUEUE_URL),
  erasure: new SqsRetryScheduler(sqsClient(), config().ERASURE_QUEUE_URL ?? ""),
}));

// ---------------------------------------------------------------- feedback and usage

const feedbackRepository = once(async () => new PgFeedbackRepository(await pgPool(), pgGuard()));
const feedbackPublisher = once(
  () => new SqsFeedbackPublisher(sqsClient(), config().ANALYTICS_QUEUE_URL, sqsGuard()),
);

export const feedbackService = once(async () => {
  const [reader, feedback, limiter] = await Promise.all([
    historyReader(),
    feedbackRepository(),
    rateLimiter(),
  ]);
  return new FeedbackService({
    reader,
    feedback,
    publisher: feedbackPublisher(),
    rateLimiter: limiter,
    clock,
    diagnostics,
  });
});

export const usageService = once(
  async () =>
    new UsageService({
      access: await threadAccess(),
      usage: new PgUsageRepository(await pgPool(), pgGuard()),
    }),
);

// ---------------------------------------------------------------- erasure

export const erasureOptions = once((): ErasureOptions => {
  const cfg = config();
  const settleMs = cfg.ERASURE_SETTLE_SECONDS * 1000;
  return {
    settleMs,
    // Only until the sweep after the settle time removes it; an hour more if that sweep is late.
    tombstoneTtlSeconds: cfg.ERASURE_SETTLE_SECONDS + 3600,
    batchThreads: cfg.ERASURE_BATCH_THREADS,
    chunkThreads: 500,
    leaseMs: 60_000,
    retryDelayMs: 5000,
    maxRetryDelayMs: 900_000,
    verifyEveryMs: 2000,
    // The settle time outlasts the longest request, the delete's own included.
    kickDelaySeconds: cfg.ERASURE_SETTLE_SECONDS,
    ...(cfg.MESSAGE_RETENTION_DAYS !== undefined ? { retentionDays: cfg.MESSAGE_RETENTION_DAYS } : {}),
  };
});

export const erasureQueue = once(() => {
  const url = config().ERASURE_QUEUE_URL;
  return url === undefined ? undefined : new SqsErasureQueue(sqsClient(), url, sqsGuard());
});

/** What every erasure service has; the worker's adds ClickHouse (insights-container.ts). */
export const erasureDeps = once(async (): Promise<ErasureDeps> => {
  const queue = erasureQueue();
  return {
    erasures: new PgErasureRepository(await pgPool(), pgGuard()),
    hot: new RedisThreadEraser(await redisClient(), redisKeys(), redisGuard()),
    access: await threadAccess(),
    ...(config().WEBSOCKET_API_ENDPOINT !== undefined
      ? { fanout: await fanout(), registry: await registry() }
      : {}),
    ...(queue !== undefined ? { queue } : {}),
    clock,
    diagnostics,
  };
});

/** Thread deletes, user erasures, their progress, retention (the first steps; the worker does the rest). */
export const erasureService = once(async () => new ErasureService(await erasureDeps(), erasureOptions()));
