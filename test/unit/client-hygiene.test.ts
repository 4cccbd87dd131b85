/**
 * Lambda-side hygiene: every client has connect and request timeouts, and the PostgreSQL access
 * is safe behind RDS Proxy — a small pool, no session state, no named prepared statements (either
 * would pin a proxy connection to one Lambda).
 */
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { managementApiConfig } from "../../lambdas/adapters/apigateway/api-gateway-connection-notifier.ts";
import { clickHouseConfig } from "../../lambdas/adapters/clickhouse/client.ts";
import { PgMessageRepository } from "../../lambdas/adapters/postgres/pg-message-repository.ts";
import { PgThreadRepository } from "../../lambdas/adapters/postgres/pg-thread-repository.ts";
import { pgPoolConfig } from "../../lambdas/adapters/postgres/pool.ts";
import { SERVER_STATEMENT_TIMEOUT_MS } from "../../lambdas/adapters/postgres/session-settings.ts";
import { redisClientConfig } from "../../lambdas/adapters/redis/client.ts";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import { sqsClientConfig } from "../../lambdas/adapters/sqs/client.ts";
import { parseConfig } from "../../lambdas/runtime/config.ts";

const env = parseConfig({
  PERSIST_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/persist",
  ANALYTICS_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/analytics",
  DATABASE_URL: "postgres://app@proxy.example:5432/chat",
  JWT_SECRET: "x".repeat(32),
});

describe("timeouts", () => {
  it("PostgreSQL: connect and query (client side) timeouts, no startup parameters a pooler refuses, a small pool", () => {
    const config = pgPoolConfig({
      connectionString: env.DATABASE_URL,
      ssl: true,
      max: env.PG_POOL_MAX,
      connectTimeoutMs: env.PG_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: env.PG_STATEMENT_TIMEOUT_MS,
      applicationName: "test",
    });
    expect(config.connectionTimeoutMillis).toBe(2000);
    // RDS Proxy and PgBouncer refuse these as startup parameters: the role carries them.
    for (const refused of [
      "statement_timeout",
      "idle_in_transaction_session_timeout",
      "lock_timeout",
      "options",
    ]) {
      expect(config).not.toHaveProperty(refused);
    }
    expect(config.query_timeout).toBeGreaterThan(SERVER_STATEMENT_TIMEOUT_MS);
    expect(config.max).toBeLessThanOrEqual(4);
  });

  it("Redis, standalone and cluster: connect and per-command timeouts, no endless queueing", () => {
    const base = {
      connectTimeoutMs: env.REDIS_CONNECT_TIMEOUT_MS,
      commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS,
    };
    const standalone = redisClientConfig({ ...base, url: "redis://127.0.0.1:6379", cluster: false });
    expect(standalone.options).toMatchObject({
      connectTimeout: 1000,
      commandTimeout: 100,
      maxRetriesPerRequest: 0,
    });
    const cluster = redisClientConfig({ ...base, url: "rediss://cache.example:6379", cluster: true });
    if (!cluster.cluster) throw new Error("expected a cluster configuration");
    expect(cluster.options.redisOptions).toMatchObject({
      connectTimeout: 1000,
      commandTimeout: 100,
      tls: {},
    });
    expect(cluster.options.slotsRefreshTimeout).toBe(1000);
  });

  it("SQS and the API Gateway Management API: connection and request timeouts, few attempts", async () => {
    const timeouts = async (handler: unknown) => {
      const config = await (handler as { configProvider: Promise<Record<string, unknown>> }).configProvider;
      return { connectionTimeout: config.connectionTimeout, requestTimeout: config.requestTimeout };
    };
    const sqs = sqsClientConfig({ timeoutMs: env.SQS_TIMEOUT_MS });
    expect(sqs.maxAttempts).toBe(2);
    expect(await timeouts(sqs.requestHandler)).toEqual({ connectionTimeout: 500, requestTimeout: 500 });
    const management = managementApiConfig("https://api.example/prod", env.WEBSOCKET_TIMEOUT_MS);
    expect(management.maxAttempts).toBe(1);
    expect(await timeouts(management.requestHandler)).toEqual({
      connectionTimeout: 1000,
      requestTimeout: 1000,
    });
  });

  it("ClickHouse: a request timeout", () => {
    const config = clickHouseConfig({
      url: env.CLICKHOUSE_URL,
      username: "default",
      password: "",
      timeoutMs: env.CLICKHOUSE_TIMEOUT_MS,
    });
    expect(config.request_timeout).toBe(10_000);
  });
});

describe("PostgreSQL statements behind RDS Proxy", () => {
  /** A pool double that records what the repositories send. */
  const recordingPool = () => {
    const sent: unknown[] = [];
    const pool = {
      query: async (config: unknown) => {
        sent.push(config);
        return { rows: [], rowCount: 0 };
      },
    } as unknown as pg.Pool;
    return { pool, sent };
  };

  it("are plain text (unnamed), and none changes session state", async () => {
    const { pool, sent } = recordingPool();
    const guard = new TierGuard("postgres", { failureThreshold: 5, halfOpenAfterMs: 1000 }, () => false);
    const messages = new PgMessageRepository(pool, guard);
    const threads = new PgThreadRepository(pool, guard);
    const message = {
      id: "0190f0e0-0000-7000-8000-000000000001",
      thread_id: "0190f0e0-0000-7000-8000-000000000000",
      seq: 1,
      role: "user" as const,
      user_id: "u",
      content: "c",
      metadata: {},
      client_message_id: null,
      created_at: 1,
      created_at_ms: 1000,
    };
    const thread = {
      id: message.thread_id,
      owner_id: "u",
      title: null,
      metadata: {},
      created_at: 1,
      created_at_ms: 1000,
    };
    // The double answers no rows, which persistBatch reads (after its re-read by id, also recorded) as
    // a (thread_id, seq) taken by another message.
    await messages.persistBatch([{ message, ownerId: "u" }]).catch(() => undefined);
    await messages.commit({ ...message, seq: null });
    await messages.findById(message.id);
    await messages.history(thread.id, { direction: "backward", limit: 10 });
    await messages.history(thread.id, { direction: "backward", before: 5, limit: 10 });
    await messages.history(thread.id, { direction: "forward", after: 0, limit: 10 });
    await messages.count(thread.id);
    await messages.pendingOutbox(10);
    await messages.addToOutbox([message.id]);
    await messages.clearOutbox([message.id]);
    await messages.ping();
    await threads.create(thread).catch(() => undefined);
    await threads.get(thread.id);
    await threads.listByOwner("u", { limit: 10 });
    await threads.listByOwner("u", { limit: 10, after: { created_at_ms: 1, id: thread.id } });
    await threads.getForInstall(thread.id);

    expect(sent.length).toBeGreaterThanOrEqual(16);
    for (const statement of sent) {
      expect(typeof statement).toBe("string");
      expect(statement as string).not.toMatch(
        /^\s*(SET|RESET|LISTEN|PREPARE|DECLARE|BEGIN)\b|\bTEMP(ORARY)?\s+TABLE\b|pg_advisory/i,
      );
    }
  });
});
