/**
 * An isolated local stack for one test file: its own ports, queues and Redis key prefix, on the
 * shared test databases. Real clients only: fetch, ws, pg, ioredis, @clickhouse/client.
 */
import { randomBytes } from "node:crypto";
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import type { ClickHouseClient } from "@clickhouse/client";
import pg from "pg";
import { createClickHouseClient } from "../../lambdas/adapters/clickhouse/client.ts";
import { createRedisClient, type RedisClient } from "../../lambdas/adapters/redis/client.ts";
import type { PrincipalRole } from "../../lambdas/core/model.ts";
import { type LocalStack, type LocalStackOptions, startLocalStack } from "../../scripts/local-stack/stack.ts";
import { signDevToken } from "../../scripts/local-stack/tokens.ts";
import { createDatabaseFrom, dropDatabase } from "./databases.ts";
import {
  TEST_CLICKHOUSE,
  TEST_DATABASE_TEMPLATE_URL,
  TEST_JWT_SECRET,
  TEST_REDIS_CLUSTER,
  TEST_REDIS_URL,
  TEST_STACK_DATABASE_PREFIX,
  viaPooler,
} from "./test-env.ts";
import { WsClient } from "./ws-client.ts";

export interface ApiResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

export interface TestStack {
  readonly stack: LocalStack;
  readonly pg: pg.Pool;
  readonly clickhouse: ClickHouseClient;
  readonly redis: RedisClient;
  readonly redisPrefix: string;
  token(sub: string, roles?: PrincipalRole[]): Promise<string>;
  request<T = Record<string, unknown>>(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> },
  ): Promise<ApiResponse<T>>;
  createThread(
    token: string,
    body?: Record<string, unknown>,
  ): Promise<{ id: string } & Record<string, unknown>>;
  /** Posts these messages to the thread, one after another (each must be accepted); their ids. */
  postMessages(token: string, threadId: string, texts: readonly string[]): Promise<string[]>;
  ws(token: string | undefined): Promise<WsClient>;
  /** Rows for this message id in PostgreSQL. */
  rowsInPostgres(messageId: string): Promise<number>;
  /** Rows for this message id in ClickHouse as a deduplicating query (FINAL) sees them. */
  rowsInClickHouse(messageId: string): Promise<number>;
  /** Messages in the queue, visible or in flight. */
  queueDepth(queueUrl: string): Promise<number>;
  stop(): Promise<void>;
}

export interface TestStackOptions extends Omit<LocalStackOptions, "env"> {
  readonly env?: Record<string, string>;
}

const escapeClickHouse = (value: string): string => value.replace(/\\/g, "\\\\").replace(/'/g, "\\'");

export const startTestStack = async (options: TestStackOptions = {}): Promise<TestStack> => {
  const savedEnv = { ...process.env };
  const id = randomBytes(4).toString("hex");
  const redisPrefix = `test-${id}:`;
  // A database of its own, unless the test brings one (a private server for fault tests).
  const ownDatabase =
    options.env?.DATABASE_URL === undefined
      ? await createDatabaseFrom(TEST_DATABASE_TEMPLATE_URL, `${TEST_STACK_DATABASE_PREFIX}${id}`)
      : undefined;
  const env = {
    ...(ownDatabase !== undefined ? { DATABASE_URL: viaPooler(ownDatabase) } : {}),
    REDIS_URL: TEST_REDIS_URL,
    REDIS_CLUSTER: TEST_REDIS_CLUSTER,
    REDIS_KEY_PREFIX: redisPrefix,
    CLICKHOUSE_URL: TEST_CLICKHOUSE.url,
    CLICKHOUSE_DATABASE: TEST_CLICKHOUSE.database,
    JWT_SECRET: TEST_JWT_SECRET,
    ACCEPT_MODE: "queued",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "ERROR",
    RETRY_BASE_DELAY_SECONDS: "1",
    RETRY_MAX_DELAY_SECONDS: "2",
    // Erasures: the consumers here time out within 2 s; the worker gets part of a consumer run.
    ERASURE_SETTLE_SECONDS: "2",
    ERASURE_BUDGET_MS: "800",
    // Overload detection off: the test's own client code, and the other test files on the same
    // two cores, share this process's event loop, so its lag says nothing about the stack. The
    // admission tests switch it on (test/integration/admission.test.ts, test/unit/admission.test.ts).
    OVERLOAD_LAG_MS: "0",
    ADMISSION_MAX_INFLIGHT: "0",
    ...options.env,
  };
  const stack = await startLocalStack({
    httpPort: 0,
    wsPort: 0,
    sqsPort: 0,
    queuePrefix: `t-${id}`,
    migrate: false,
    outboxIntervalMs: 200,
    websocketIdleTimeoutMs: 60_000,
    // The web client is built and served only where a test asks for it (the browser tests).
    web: false,
    ...options,
    consumers: {
      persist: {
        visibilityTimeoutSeconds: 2,
        maxReceiveCount: 3,
        timeoutMs: 1800,
        ...options.consumers?.persist,
      },
      analytics: {
        visibilityTimeoutSeconds: 2,
        maxReceiveCount: 3,
        maxBatchingWindowMs: 50,
        timeoutMs: 1800,
        ...options.consumers?.analytics,
      },
      erasure: {
        visibilityTimeoutSeconds: 2,
        maxReceiveCount: 10,
        timeoutMs: 1800,
        ...options.consumers?.erasure,
      },
    },
    env,
  });
  const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
  pool.on("error", () => undefined);
  const clickhouse = createClickHouseClient({
    ...TEST_CLICKHOUSE,
    url: env.CLICKHOUSE_URL,
    database: env.CLICKHOUSE_DATABASE,
    timeoutMs: 10_000,
  });
  const redis = createRedisClient({
    url: env.REDIS_URL,
    cluster: env.REDIS_CLUSTER === "true",
    connectTimeoutMs: 2000,
    commandTimeoutMs: 2000,
  });
  redis.on("error", () => undefined);
  const sqs = new SQSClient({
    endpoint: stack.sqsEndpoint,
    region: "us-east-1",
    useQueueUrlAsEndpoint: false,
  });
  const sockets: WsClient[] = [];

  const request: TestStack["request"] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const body = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    if (body !== undefined) headers["content-type"] ??= "application/json";
    const res = await fetch(`${stack.httpUrl}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text === "" ? {} : JSON.parse(text) };
  };

  return {
    stack,
    pg: pool,
    clickhouse,
    redis,
    redisPrefix,
    token: (sub, roles = []) => signDevToken({ secret: TEST_JWT_SECRET, sub, roles }),
    request,
    async createThread(token, body = {}) {
      const res = await request<{ id: string }>("POST", "/api/threads", { token, body });
      if (res.status !== 201) throw new Error(`create thread: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async postMessages(token, threadId, texts) {
      const ids: string[] = [];
      for (const message of texts) {
        const res = await request<{ id: string }>("POST", `/api/threads/${threadId}/messages`, {
          token,
          body: { message },
        });
        if (res.status !== 201) throw new Error(`post message: ${res.status} ${JSON.stringify(res.body)}`);
        ids.push(res.body.id);
      }
      return ids;
    },
    async ws(token) {
      const client = await WsClient.connect(stack.wsUrl, token);
      sockets.push(client);
      return client;
    },
    async rowsInPostgres(messageId) {
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM messages WHERE id = $1",
        [messageId],
      );
      return rows[0]?.n ?? 0;
    },
    async rowsInClickHouse(messageId) {
      const result = await clickhouse.query({
        query: `SELECT count() AS n FROM messages FINAL WHERE id = '${escapeClickHouse(messageId)}'`,
        format: "JSONEachRow",
      });
      const [row] = await result.json<{ n: string }>();
      return Number(row?.n ?? 0);
    },
    async queueDepth(queueUrl) {
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: queueUrl,
          AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        }),
      );
      const visible = Attributes?.ApproximateNumberOfMessages;
      const inFlight = Attributes?.ApproximateNumberOfMessagesNotVisible;
      if (visible === undefined || inFlight === undefined)
        throw new Error(`queue attributes missing for ${queueUrl}`);
      return Number(visible) + Number(inFlight);
    },
    async stop() {
      await Promise.all(sockets.map((s) => s.close()));
      await stack.stop();
      await Promise.all([pool.end(), clickhouse.close()]);
      if (ownDatabase !== undefined) await dropDatabase(ownDatabase);
      redis.disconnect();
      sqs.destroy();
      for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
      Object.assign(process.env, savedEnv);
    },
  };
};
