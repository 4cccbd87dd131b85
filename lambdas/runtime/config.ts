/**
 * The one place the Lambdas read `process.env`. Parsed once, typed, and refused at cold start with
 * a message naming every bad variable. The README's configuration table lists the same variables.
 */
import * as z from "zod";

/** Retry-After of a 503 (also for a tier outage that no fallback handled; see http-response.ts). */
export const DEFAULT_RETRY_AFTER_SECONDS = 2;

/**
 * The local stack's HS256 secret. It is in this repository, so anyone can sign tokens with it: it
 * is refused unless APP_ENV is `local` or `test`.
 */
export const LOCAL_DEVELOPMENT_JWT_SECRET = "local-development-secret-do-not-use-in-aws";
const DEVELOPMENT_ENVIRONMENTS = new Set(["local", "test"]);

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === "" ? undefined : v));

const fields = z.object({
  APP_ENV: z.string().default("local"),
  ACCEPT_MODE: z.enum(["queued", "sync"]).default("queued"),

  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  REDIS_CLUSTER: bool.default(false),
  REDIS_KEY_PREFIX: z.string().default("chat:"),
  /** Secrets Manager secret {username, password} for Redis AUTH (ElastiCache RBAC user). */
  REDIS_AUTH_SECRET_ARN: optionalString,
  REDIS_CONNECT_TIMEOUT_MS: int(1).default(1000),
  REDIS_COMMAND_TIMEOUT_MS: int(1).default(100),

  DATABASE_URL: optionalString,
  DATABASE_SECRET_ARN: optionalString,
  DATABASE_HOST: optionalString,
  DATABASE_NAME: z.string().default("chat"),
  DATABASE_SSL: bool.default(false),
  PG_POOL_MAX: int(1, 100).default(4),
  PG_CONNECT_TIMEOUT_MS: int(1).default(2000),
  PG_STATEMENT_TIMEOUT_MS: int(1).default(3000),

  PERSIST_QUEUE_URL: z.string().min(1),
  ANALYTICS_QUEUE_URL: z.string().min(1),
  /** The erasure worker's queue (unset: erasures wait for the outbox relay to hand them over). */
  ERASURE_QUEUE_URL: optionalString,
  SQS_TIMEOUT_MS: int(1).default(500),

  CLICKHOUSE_URL: z.string().default("http://127.0.0.1:8123"),
  CLICKHOUSE_USER: z.string().default("default"),
  CLICKHOUSE_PASSWORD: z.string().default(""),
  CLICKHOUSE_DATABASE: z.string().default("chat"),
  CLICKHOUSE_SECRET_ARN: optionalString,
  CLICKHOUSE_TIMEOUT_MS: int(1).default(10000),

  WEBSOCKET_API_ENDPOINT: optionalString,
  /**
   * How the accept path calls SQS and @connections: `signed` (one SigV4-signed request, the SDK's
   * signer and credentials; adapters/aws/signed-http.ts) or `sdk` (the AWS SDK clients).
   */
  ACCEPT_AWS_TRANSPORT: z.enum(["signed", "sdk"]).default("signed"),
  /** The SDK's endpoint variables: the signed transport reads them as the SDK does. */
  AWS_ENDPOINT_URL_SQS: optionalString,
  AWS_ENDPOINT_URL: optionalString,
  WEBSOCKET_TIMEOUT_MS: int(1).default(1000),
  FANOUT_CONCURRENCY: int(1, 256).default(16),
  FANOUT_BUDGET_MS: int(1).default(1500),
  /** Most messages replayed on subscribe; also how many stream positions Redis keeps per thread. */
  REPLAY_LIMIT: int(1, 1000).default(200),
  /** How long GET /api/health answers from its last probe of the tiers. */
  HEALTH_CACHE_SECONDS: int(0, 300).default(5),
  MAX_CONNECTIONS_PER_USER: int(1).default(20),
  MAX_SUBSCRIPTIONS_PER_CONNECTION: int(1).default(50),

  JWT_SECRET: optionalString,
  JWT_JWKS_URL: optionalString,
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  JWT_ROLES_CLAIM: z.string().default("roles"),
  JWT_CLOCK_TOLERANCE_SECONDS: int(0, 300).default(5),

  /** Also a streamed reply's complete, whose `content` may be STREAM_MAX_BYTES once JSON-escaped. */
  MAX_BODY_BYTES: int(1024).default(262144),
  MAX_MESSAGE_BYTES: int(1).default(16384),
  MAX_METADATA_BYTES: int(2).default(4096),
  MAX_TITLE_LENGTH: int(1).default(200),
  DEFAULT_PAGE_SIZE: int(1).default(50),
  MAX_PAGE_SIZE: int(1).default(100),

  /** A streamed reply with no delta for this long is closed as `error` (`finish_reason: "timeout"`). */
  STREAM_IDLE_TIMEOUT_SECONDS: int(1, 86400).default(120),
  STREAM_MAX_DELTA_BYTES: int(1).default(4096),
  STREAM_MAX_DELTAS: int(1).default(10000),
  /**
   * Largest streamed reply, in bytes as a queue record carries it (JSON-escaped; an emoji counts
   * 12): its final form travels through SQS, whose records hold 256 KiB.
   */
  STREAM_MAX_BYTES: int(1, 131072).default(65536),

  /** Largest thread export, UTF-8 bytes (413 `export_too_large`: page the history instead); Lambda answers at most 6 MB. */
  EXPORT_MAX_BYTES: int(1024, 5_000_000).default(5_000_000),

  HISTORY_CACHE_SIZE: int(1).default(200),
  CACHE_TTL_SECONDS: int(60).default(86400),
  IDEMPOTENCY_TTL_SECONDS: int(60).default(86400),
  /**
   * The persist bound: every accepted message is in PostgreSQL within this long (it must outlast
   * the consumer's retry delays and a PostgreSQL outage you want to ride out; docs/architecture.md).
   */
  PERSIST_BOUND_SECONDS: int(1).default(3600),
  /** How long a try holds its client_message_id before a retry may take the accept over. */
  ACCEPT_LEASE_SECONDS: int(1).default(5),
  CONNECTION_TTL_SECONDS: int(60).default(7500),

  /** Messages and new threads per second per user (token bucket); 0 switches limiting off. */
  RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).default(5),
  RATE_LIMIT_BURST: int(1).default(30),

  /**
   * Overload (runtime/admission.ts): smoothed event-loop lag above which this process sheds new
   * accepts (with a probability rising to 1 at twice it) and stops counting timeouts against a
   * tier's breaker; 0 switches the signal off.
   */
  OVERLOAD_LAG_MS: int(0, 10_000).default(40),
  /**
   * Accepts and deltas in flight in one process above which new ones are shed (503 overloaded);
   * at half of it, timeouts no longer count against a tier's breaker; 0: no limit.
   */
  ADMISSION_MAX_INFLIGHT: int(0).default(100),
  /** Retry-After of a request shed for overload. */
  OVERLOAD_RETRY_AFTER_SECONDS: int(1).default(1),

  BREAKER_FAILURE_THRESHOLD: int(1).default(5),
  BREAKER_HALF_OPEN_AFTER_MS: int(1).default(2000),

  RETRY_BASE_DELAY_SECONDS: int(0, 43200).default(10),
  RETRY_MAX_DELAY_SECONDS: int(0, 43200).default(900),
  RETRY_AFTER_SECONDS: int(1).default(DEFAULT_RETRY_AFTER_SECONDS),
  OUTBOX_BATCH_SIZE: int(1, 10000).default(500),

  /**
   * Erasure: how long writers in flight when a thread is deleted may still write (the longest
   * function timeout); the second pass over Redis and ClickHouse waits this long (docs/erasure.md).
   */
  ERASURE_SETTLE_SECONDS: int(0, 3600).default(120),
  /** Time the erasure worker gives a batch of erasures (below its function's timeout). */
  ERASURE_BUDGET_MS: int(100, 900_000).default(10_000),
  /** Threads deleted per PostgreSQL transaction by a user erasure or retention. */
  ERASURE_BATCH_THREADS: int(1, 1000).default(50),
  /** Threads whose newest message is older than this many days are erased (unset: kept). */
  MESSAGE_RETENTION_DAYS: z.preprocess((v) => (v === "" ? undefined : v), int(1, 36500).optional()),

  LOG_LEVEL: z.enum(["DEBUG", "INFO", "WARN", "ERROR", "SILENT"]).default("INFO"),
});

/** Every variable the Lambdas read (the README's configuration table lists each one). */
export const CONFIG_KEYS: readonly string[] = Object.keys(fields.shape);

const schema = fields.superRefine((env, ctx) => {
  if (env.JWT_SECRET === undefined && env.JWT_JWKS_URL === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_SECRET"],
      message: "set JWT_SECRET (HS256) or JWT_JWKS_URL",
    });
  }
  if (env.JWT_SECRET !== undefined && env.JWT_SECRET.length < 32) {
    ctx.addIssue({ code: "custom", path: ["JWT_SECRET"], message: "must be at least 32 characters" });
  }
  if (env.JWT_SECRET === LOCAL_DEVELOPMENT_JWT_SECRET && !DEVELOPMENT_ENVIRONMENTS.has(env.APP_ENV)) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_SECRET"],
      message: `is the public local development secret; refused with APP_ENV=${env.APP_ENV} (only local or test)`,
    });
  }
  if (env.JWT_SECRET !== undefined && env.JWT_JWKS_URL !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_SECRET"],
      message: "set JWT_SECRET or JWT_JWKS_URL, not both (which tokens to trust must be unambiguous)",
    });
  }
  if (env.APP_ENV === "prod" && env.JWT_JWKS_URL !== undefined && env.JWT_AUDIENCE === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_AUDIENCE"],
      message: "is required in prod with JWT_JWKS_URL: without it any token of the provider is accepted",
    });
  }
  if (
    env.DATABASE_URL === undefined &&
    (env.DATABASE_SECRET_ARN === undefined || env.DATABASE_HOST === undefined)
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["DATABASE_URL"],
      message: "set DATABASE_URL, or DATABASE_SECRET_ARN with DATABASE_HOST",
    });
  }
  if (env.RETRY_MAX_DELAY_SECONDS < env.RETRY_BASE_DELAY_SECONDS) {
    ctx.addIssue({
      code: "custom",
      path: ["RETRY_MAX_DELAY_SECONDS"],
      message: "must be >= RETRY_BASE_DELAY_SECONDS",
    });
  }
});

export type Env = z.infer<typeof schema>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export const parseConfig = (env: Record<string, string | undefined>): Env => {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`Invalid configuration: ${problems}`);
  }
  return Object.freeze(result.data);
};

let cached: Env | undefined;

/** The configuration of this process, read from the environment on first use. */
export const config = (): Env => {
  cached ??= parseConfig(process.env);
  return cached;
};
