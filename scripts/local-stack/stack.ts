/**
 * The built-in local stack: the real handlers behind a local HTTP API, a local WebSocket API with
 * its @connections endpoint, an embedded SQS endpoint with event source mappings for the
 * consumers and the erasure worker, the outbox relay on a timer and
 * retention (where MESSAGE_RETENTION_DAYS is set) — against real Redis, PostgreSQL and ClickHouse.
 */

import { SQSClient } from "@aws-sdk/client-sqs";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyWebsocketEventV2,
  SQSBatchResponse,
  SQSEvent,
} from "aws-lambda";
import { keepAliveHandler } from "../../lambdas/adapters/http-handler.ts";
import {
  CONSUMER_FUNCTIONS,
  HTTP_FUNCTIONS,
  SCHEDULED_FUNCTIONS,
  WEBSOCKET_FUNCTIONS,
} from "../../lambdas/handlers/catalog.ts";
import { LOCAL_DEFAULTS } from "./defaults.ts";
import { SqsEventSource } from "./event-source.ts";
import { corsFromEnvironment, HttpGateway, type LocalCors } from "./http-gateway.ts";
import { LocalFunction } from "./lambda-runtime.ts";
import { ensureClickHouse, ensurePostgres } from "./schema.ts";
import { createQueueWithDlq, type LocalQueue, startSqsEndpoint } from "./sqs-endpoint.ts";
import { WebSite } from "./web-site.ts";
import { WebSocketGateway } from "./websocket-gateway.ts";

export interface ConsumerSettings {
  readonly batchSize: number;
  readonly maxBatchingWindowMs: number;
  readonly concurrency: number;
  readonly visibilityTimeoutSeconds: number;
  readonly maxReceiveCount: number;
  readonly timeoutMs: number;
}

export type ConsumerName = "persist" | "analytics" | "erasure";

export const DEFAULT_CONSUMERS: Readonly<Record<ConsumerName, ConsumerSettings>> = {
  persist: {
    batchSize: 200,
    maxBatchingWindowMs: 20,
    concurrency: 2,
    visibilityTimeoutSeconds: 30,
    maxReceiveCount: 5,
    timeoutMs: 20_000,
  },
  analytics: {
    batchSize: 100,
    maxBatchingWindowMs: 1000,
    concurrency: 1,
    visibilityTimeoutSeconds: 60,
    maxReceiveCount: 5,
    timeoutMs: 30_000,
  },
  erasure: {
    batchSize: 10,
    maxBatchingWindowMs: 0,
    concurrency: 1,
    visibilityTimeoutSeconds: 60,
    maxReceiveCount: 10,
    timeoutMs: 30_000,
  },
};

export interface LocalStackOptions {
  /** 0 = any free port. */
  readonly httpPort?: number;
  readonly wsPort?: number;
  readonly sqsPort?: number;
  /** Queue URLs as `http://sqs.<region>.<sqsHost>:<port>/...` (e.g. LocalStack's shape). */
  readonly sqsHost?: string;
  /**
   * An SQS endpoint that is already running (LocalStack's, say): no embedded endpoint is started,
   * the queues are created there.
   */
  readonly externalSqsEndpoint?: string;
  readonly stage?: string;
  readonly queuePrefix?: string;
  /** Handler environment; wins over the process environment and LOCAL_DEFAULTS. */
  readonly env?: Readonly<Record<string, string>>;
  readonly consumers?: { readonly [K in ConsumerName]?: Partial<ConsumerSettings> };
  /** How often the outbox relay runs (0: not in this process). */
  readonly outboxIntervalMs?: number;
  /** How often retention runs where MESSAGE_RETENTION_DAYS is set (0: only when asked). @default 1 h */
  readonly retentionIntervalMs?: number;
  readonly migrate?: boolean;
  /** False: queues exist but nothing consumes them (a test can run consumers itself). */
  readonly startConsumers?: boolean;
  readonly websocketIdleTimeoutMs?: number;
  /** CORS of the HTTP API. @default CORS_ALLOWED_ORIGINS (comma-separated), else http://127.0.0.1:3000 and http://localhost:3000 */
  readonly cors?: LocalCors;
  /**
   * The web client: served at `/` on the API's port (the default), on a port of its own
   * (`{ port }`, 0 = any: a page on another origin than the API), or not at all (false).
   */
  readonly web?: false | { readonly port?: number };
  readonly onError?: (source: string, error: unknown) => void;
}

export interface LocalStack {
  readonly httpUrl: string;
  /** Where the web client is served (null: not served). */
  readonly webUrl: string | null;
  /** Browser origins the HTTP API admits (CORS). */
  readonly corsAllowedOrigins: readonly string[];
  readonly wsUrl: string;
  readonly managementEndpoint: string;
  readonly sqsEndpoint: string;
  readonly queues: Readonly<Record<ConsumerName, LocalQueue>>;
  readonly env: Readonly<Record<string, string>>;
  readonly websocket: WebSocketGateway;
  readonly eventSources: Readonly<Record<ConsumerName, SqsEventSource>>;
  /** Runs the outbox relay once now (it also runs on its timer). */
  relayOutbox(): Promise<void>;
  /**
   * Runs the retention function once, as its schedule would at `at` (ISO 8601; default now). It
   * also runs hourly where MESSAGE_RETENTION_DAYS is set. Answers the erasure it started.
   */
  applyRetention(at?: string): Promise<{ erasure_id: string | null }>;
  stop(): Promise<void>;
}

const HTTP_TIMEOUT_MS = 10_000;

export const startLocalStack = async (options: LocalStackOptions = {}): Promise<LocalStack> => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(LOCAL_DEFAULTS)) env[k] = process.env[k] ?? v;
  Object.assign(env, options.env ?? {});
  Object.assign(process.env, env);

  if (options.migrate ?? true) {
    await ensurePostgres(env.DATABASE_URL as string);
    await ensureClickHouse({
      url: env.CLICKHOUSE_URL as string,
      username: env.CLICKHOUSE_USER as string,
      password: env.CLICKHOUSE_PASSWORD as string,
      database: env.CLICKHOUSE_DATABASE as string,
    });
  }

  const sqs =
    options.externalSqsEndpoint !== undefined
      ? { endpoint: options.externalSqsEndpoint, close: async () => undefined }
      : await startSqsEndpoint(options.sqsPort ?? 9324, options.sqsHost);
  const sqsClient = new SQSClient({
    endpoint: sqs.endpoint,
    region: env.AWS_REGION,
    maxAttempts: 2,
    useQueueUrlAsEndpoint: false,
    md5: false,
    // Long polls wait up to 1 s: the request timeout leaves room for them.
    requestHandler: keepAliveHandler({ timeoutMs: 10_000 }),
  });
  const prefix = options.queuePrefix ?? "chat";
  const consumers = {
    persist: { ...DEFAULT_CONSUMERS.persist, ...options.consumers?.persist },
    analytics: { ...DEFAULT_CONSUMERS.analytics, ...options.consumers?.analytics },
    erasure: { ...DEFAULT_CONSUMERS.erasure, ...options.consumers?.erasure },
  };
  const queues = {
    persist: await createQueueWithDlq(sqsClient, { name: `${prefix}-persist`, ...consumers.persist }),
    analytics: await createQueueWithDlq(sqsClient, { name: `${prefix}-analytics`, ...consumers.analytics }),
    erasure: await createQueueWithDlq(sqsClient, { name: `${prefix}-erasure`, ...consumers.erasure }),
  };

  const stage = options.stage ?? "local";
  const cors = options.cors ?? corsFromEnvironment(process.env.CORS_ALLOWED_ORIGINS);
  const httpGateway = new HttpGateway(
    HTTP_FUNCTIONS.map((f) => ({
      routeKey: f.routeKey,
      fn: new LocalFunction<APIGatewayProxyEventV2, unknown>(f.id, f.entry, HTTP_TIMEOUT_MS),
      shed: f.shed === true,
    })),
    cors,
  );
  const websocket = new WebSocketGateway({
    stage,
    routes: new Map(
      WEBSOCKET_FUNCTIONS.map((f) => [
        f.routeKey,
        new LocalFunction<APIGatewayProxyWebsocketEventV2, unknown>(f.id, f.entry, HTTP_TIMEOUT_MS),
      ]),
    ),
    ...(options.websocketIdleTimeoutMs !== undefined
      ? { idleTimeoutMs: options.websocketIdleTimeoutMs }
      : {}),
  });
  const httpUrl = await httpGateway.listen(options.httpPort ?? 3000);
  const { wsUrl, managementEndpoint } = await websocket.listen(options.wsPort ?? 3001);

  const site =
    options.web === false
      ? undefined
      : new WebSite({ apiUrl: `${httpUrl}/api`, wsUrl, jwtSecret: env.JWT_SECRET as string });
  await site?.build();
  let webUrl: string | null = null;
  if (site !== undefined && options.web !== false && options.web?.port !== undefined) {
    webUrl = await site.listen(options.web.port);
  } else if (site !== undefined) {
    httpGateway.serveSite(site);
    webUrl = httpUrl;
  }

  // The handlers read their configuration on first use: everything is in place before they load.
  Object.assign(env, {
    PERSIST_QUEUE_URL: queues.persist.url,
    ANALYTICS_QUEUE_URL: queues.analytics.url,
    ERASURE_QUEUE_URL: queues.erasure.url,
    // The SDK's own endpoint variables, unless the caller chose them (e.g. AWS_ENDPOINT_URL).
    ...(env.AWS_ENDPOINT_URL === undefined && env.AWS_ENDPOINT_URL_SQS === undefined
      ? { AWS_ENDPOINT_URL_SQS: sqs.endpoint }
      : {}),
    WEBSOCKET_API_ENDPOINT: managementEndpoint,
    ...(options.env ?? {}),
  });
  Object.assign(process.env, env);
  httpGateway.open();
  websocket.open();

  const onError = options.onError ?? (() => undefined);
  const consumer = (which: ConsumerName) => {
    const settings = consumers[which];
    const spec = CONSUMER_FUNCTIONS[which];
    return new SqsEventSource(sqsClient, {
      queueUrl: queues[which].url,
      queueArn: queues[which].arn,
      fn: new LocalFunction<SQSEvent, SQSBatchResponse | undefined>(spec.id, spec.entry, settings.timeoutMs),
      batchSize: settings.batchSize,
      maxBatchingWindowMs: settings.maxBatchingWindowMs,
      concurrency: settings.concurrency,
      onError: (error) => onError(spec.id, error),
    });
  };
  const eventSources = {
    persist: consumer("persist"),
    analytics: consumer("analytics"),
    erasure: consumer("erasure"),
  };
  if (options.startConsumers ?? true) {
    for (const source of Object.values(eventSources)) source.start();
  }

  const relay = new LocalFunction<unknown, unknown>(
    SCHEDULED_FUNCTIONS.outboxRelay.id,
    SCHEDULED_FUNCTIONS.outboxRelay.entry,
    30_000,
  );
  let relaying: Promise<void> = Promise.resolve();
  const relayOutbox = (): Promise<void> => {
    relaying = relaying
      .then(() => relay.invoke({}))
      .then(
        () => undefined,
        (error: unknown) => onError(SCHEDULED_FUNCTIONS.outboxRelay.id, error),
      );
    return relaying;
  };
  const interval = options.outboxIntervalMs ?? 5000;
  const timer = interval > 0 ? setInterval(() => void relayOutbox(), interval) : undefined;

  const retention = new LocalFunction<{ time: string }, { erasure_id: string | null }>(
    SCHEDULED_FUNCTIONS.retention.id,
    SCHEDULED_FUNCTIONS.retention.entry,
    30_000,
  );
  const applyRetention = (at?: string) => retention.invoke({ time: at ?? new Date().toISOString() });
  const retentionTimer =
    (env.MESSAGE_RETENTION_DAYS ?? "") !== "" && (options.retentionIntervalMs ?? 3_600_000) > 0
      ? setInterval(
          () =>
            void applyRetention().catch((error: unknown) => onError(SCHEDULED_FUNCTIONS.retention.id, error)),
          options.retentionIntervalMs ?? 3_600_000,
        )
      : undefined;

  return {
    httpUrl,
    webUrl,
    corsAllowedOrigins: cors.allowedOrigins,
    wsUrl,
    managementEndpoint,
    sqsEndpoint: sqs.endpoint,
    queues,
    env,
    websocket,
    eventSources,
    relayOutbox,
    applyRetention,
    async stop() {
      clearInterval(timer);
      clearInterval(retentionTimer);
      await Promise.all(Object.values(eventSources).map((source) => source.stop()));
      await relaying;
      await Promise.all([httpGateway.close(), websocket.close(), site?.close()]);
      sqsClient.destroy();
      await sqs.close();
      const { closeClients } = await import("../../lambdas/runtime/container.ts");
      await closeClients();
    },
  };
};
