/**
 * The typed configuration of one deployment environment. `environments.ts` holds the values;
 * `validate.ts` checks them (every problem at once) before any construct is built. Nothing in
 * `lib/` reads CDK context or `process.env`: `bin/app.ts` selects an environment and passes it on.
 */
import type { JwtSettings } from "../constructs/identity.ts";

/** `queued`: accept into Redis + SQS (normal). `sync`: commit to PostgreSQL in the request (rollback flag). */
export type AcceptMode = "queued" | "sync";

export type LogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";

/** What happens to stateful resources (database, cache, queues, secrets, user pool, logs) on stack deletion. */
export type DataRetention = "destroy" | "retain";

export interface NetworkConfig {
  /** Availability zones used (2–6); the database and the cache need at least two. */
  readonly maxAzs: number;
  /** NAT gateways (1–maxAzs). One per AZ removes the cross-AZ dependency; one is cheaper. */
  readonly natGateways: number;
  /** VPC flow logs to CloudWatch Logs (with the log retention below). */
  readonly flowLogs: boolean;
}

export interface DatabaseConfig {
  /** Aurora PostgreSQL engine version, "major.minor" (e.g. "17.7"). */
  readonly engineVersion: string;
  /** Aurora Serverless v2 capacity in ACUs (0–256, steps of 0.5; 0 allows auto-pause). */
  readonly minCapacity: number;
  readonly maxCapacity: number;
  /** Reader instances in other AZs (0 = single-AZ; ≥ 1 = multi-AZ with automatic failover). */
  readonly readers: number;
  /** Automated backup retention (1–35 days). */
  readonly backupRetentionDays: number;
  readonly deletionProtection: boolean;
  /** Database created in the cluster and used by the Lambdas. */
  readonly databaseName: string;
}

export interface CacheConfig {
  /** ElastiCache Serverless for Valkey major version. */
  readonly majorEngineVersion: "7" | "8";
  /** Upper bound on stored data (1–5000 GB); caps the bill. */
  readonly maxDataStorageGb: number;
  /** Upper bound on ElastiCache processing units per second (1,000–15,000,000). */
  readonly maxEcpuPerSecond: number;
  /** Daily snapshots kept (0 = none, up to 35). */
  readonly snapshotRetentionDays: number;
}

/** An SQS consumer: its event source mapping, its function and its queue's redrive policy. */
export interface ConsumerConfig {
  /** Records per invocation (1–10,000; above 10 needs a batching window of at least 1 s). */
  readonly batchSize: number;
  /** Seconds Lambda waits to fill a batch (0–300). */
  readonly maxBatchingWindowSeconds: number;
  /** Concurrent invocations at most (2–1,000): the bound that protects PostgreSQL / ClickHouse. */
  readonly maxConcurrency: number;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  /** Receives before a record moves to the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** PostgreSQL connections per function instance (PG_POOL_MAX). */
  readonly pgPoolMax: number;
}

export interface QueuesConfig {
  /** Retention of the main queues (1–14 days); dead-letter queues always keep 14 days. */
  readonly retentionDays: number;
  readonly persist: ConsumerConfig;
  readonly analytics: ConsumerConfig;
}

export interface ApiConfig {
  /** Memory of the HTTP and WebSocket functions. */
  readonly memoryMb: number;
  /** Timeout of the HTTP and WebSocket functions (≤ 29 s, the API Gateway integration limit). */
  readonly timeoutSeconds: number;
  readonly pgPoolMax: number;
  /** Steady-state request rate and burst allowed by each API stage. */
  readonly throttleRatePerSecond: number;
  readonly throttleBurst: number;
  /** WebSocket API stage name (part of the wss:// URL and of WEBSOCKET_API_ENDPOINT). */
  readonly webSocketStageName: string;
}

/**
 * Who issues the bearer tokens the Lambdas verify (they fetch the JWKS themselves).
 * - `cognito`: the Data stack creates a user pool with the groups `admin` and `service` and an
 *   app client; the Lambdas check the ID token's issuer, audience (the client id) and
 *   `cognito:groups`.
 * - `oidc`: an external OpenID Connect provider; nothing is created.
 */
export type AuthConfig = { readonly kind: "cognito" } | ({ readonly kind: "oidc" } & JwtSettings);

export interface AlarmsConfig {
  /** Email addresses subscribed to the alarm topic (each must confirm the subscription). */
  readonly emails: readonly string[];
  /** Accept latency p99 (ms) above which the alarm fires. */
  readonly acceptLatencyP99Ms: number;
  /** Persist lag p99 (ms, accepted → row in PostgreSQL) above which the alarm fires. */
  readonly persistLagP99Ms: number;
  /** Failed invocations of a consumer (or the outbox relay) per period above which the alarm fires. */
  readonly consumerErrors: number;
  /** Period of every alarm, and how many consecutive breaching periods raise it. */
  readonly periodMinutes: number;
  readonly evaluationPeriods: number;
}

export interface EnvironmentConfig {
  /** Short lowercase name: part of stack and resource names, and APP_ENV. */
  readonly name: string;
  /** Fixed account and region: synth needs no credentials and reads AZs from cdk.context.json. */
  readonly account: string;
  readonly region: string;
  readonly dataRetention: DataRetention;
  /** Refuse `cdk destroy` of the Data stack (CloudFormation termination protection). */
  readonly terminationProtection: boolean;
  readonly acceptMode: AcceptMode;
  readonly logLevel: LogLevel;
  /** CloudWatch Logs retention of every log group (a value of RetentionDays). */
  readonly logRetentionDays: number;
  readonly network: NetworkConfig;
  readonly database: DatabaseConfig;
  readonly cache: CacheConfig;
  readonly queues: QueuesConfig;
  readonly api: ApiConfig;
  /** Retry backoff of the consumers (ChangeMessageVisibility): base · 2^(receives−1), capped. */
  readonly retry: { readonly baseDelaySeconds: number; readonly maxDelaySeconds: number };
  readonly outboxRelay: { readonly timeoutSeconds: number; readonly memoryMb: number };
  readonly auth: AuthConfig;
  /** Name of the Secrets Manager secret {url, username, password, database} created beforehand. */
  readonly clickhouse: { readonly secretName: string };
  readonly alarms: AlarmsConfig;
}
