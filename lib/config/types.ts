/**
 * The typed configuration of one deployment environment. `environments.ts` holds the values;
 * `validate.ts` checks them (every problem at once) before any construct is built. Nothing in
 * `lib/` reads CDK context or `process.env`: `bin/app.ts` selects an environment and passes it on.
 */

import type { CognitoClientSettings, JwtSettings } from "../constructs/identity.ts";
import type { InterfaceEndpointName } from "../constructs/network.ts";
import type { WebSignIn } from "../constructs/web-client.ts";

/** `queued`: accept into Redis + SQS (normal). `sync`: commit to PostgreSQL in the request (rollback flag). */
export type AcceptMode = "queued" | "sync";

export type LogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";

/** What happens to stateful resources (database, cache, queues, secrets, user pool, logs) on stack deletion. */
export type DataRetention = "destroy" | "retain";

/**
 * How the functions reach the internet (JWKS, ClickHouse, the @connections API). Its public
 * addresses are what an IP allow-list (ClickHouse) must admit: allocate them beforehand and name
 * them here to allow-list them before the first deploy (docs/deploy.md).
 */
export type EgressConfig =
  | {
      /** Managed NAT gateways, one per AZ up to `count` (1–maxAzs): highly available, $0.045/h each. */
      readonly kind: "natGateway";
      readonly count: number;
      /** Elastic IP allocation ids (`eipalloc-…`), one per gateway. @default new addresses, created with the stack */
      readonly eipAllocationIds?: readonly string[];
    }
  | {
      /** One NAT instance (Amazon Linux 2023, arm64): a few dollars a month, a single point of failure. */
      readonly kind: "natInstance";
      /** An arm64 instance type, e.g. "t4g.nano". */
      readonly instanceType: string;
      /** Elastic IP allocation id (`eipalloc-…`). @default a new address, created with the stack */
      readonly eipAllocationId?: string;
    };

export interface NetworkConfig {
  /** Availability zones used (2–6); the database and the cache need at least two. */
  readonly maxAzs: number;
  readonly egress: EgressConfig;
  /**
   * Interface endpoints ($0.01/h per AZ each). RDS Proxy needs `secretsmanager` (it runs in the
   * isolated subnets and reads its secret through it); without a proxy, NAT carries these calls.
   */
  readonly interfaceEndpoints: readonly InterfaceEndpointName[];
  /** VPC flow logs to CloudWatch Logs (with the log retention below). */
  readonly flowLogs: boolean;
}

export interface DatabaseConfig {
  /** Aurora PostgreSQL engine version, "major.minor" (e.g. "17.7"). */
  readonly engineVersion: string;
  /** Aurora Serverless v2 capacity in ACUs (0–256, steps of 0.5; 0 allows auto-pause). */
  readonly minCapacity: number;
  readonly maxCapacity: number;
  /**
   * How the functions reach PostgreSQL: `proxy` through RDS Proxy (connection multiplexing, faster
   * failover; billed for at least 8 ACUs), `direct` to the cluster's writer endpoint (no proxy; the
   * only choice with auto-pause, which RDS Proxy prevents).
   */
  readonly connection: "proxy" | "direct";
  /** With minCapacity 0: minutes without connections before Aurora pauses (5–1440). */
  readonly autoPauseAfterMinutes?: number;
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
  /** The erasure worker (docs/erasure.md). */
  readonly erasure: ConsumerConfig;
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
  /** Browser origins allowed to call the HTTP API (CORS); empty: no browser on another origin. */
  readonly corsAllowedOrigins: readonly string[];
  /** How long browsers may cache a preflight answer (seconds, 0–86400). */
  readonly corsMaxAgeSeconds: number;
  /**
   * API Gateway verifies bearer tokens (JWT authorizer, same issuer and audience as the functions)
   * before any function runs; `GET /api/health` stays open. Needs an audience, and RSA-signed tokens.
   */
  readonly jwtAuthorizer: boolean;
}

/**
 * Who issues the bearer tokens the Lambdas verify (they fetch the JWKS themselves).
 * - `cognito`: the Data stack creates a user pool with the groups `admin` and `service` and an
 *   app client; the Lambdas check the ID token's issuer, audience (the client id) and
 *   `cognito:groups`.
 * - `oidc`: an external OpenID Connect provider; nothing is created.
 */
export type AuthConfig =
  | ({ readonly kind: "cognito" } & CognitoClientSettings)
  | ({ readonly kind: "oidc" } & JwtSettings);

export interface AlarmsConfig {
  /**
   * Who hears the alarms: email addresses subscribed to the alarm topic (each must confirm the
   * subscription) and SNS topics (ARNs, at most 4: e.g. a chat or paging integration) every alarm
   * also notifies. An environment that retains its data must name at least one.
   */
  readonly emails: readonly string[];
  readonly snsTopicArns: readonly string[];
  /** Accept latency p99 (ms) above which the alarm fires. */
  readonly acceptLatencyP99Ms: number;
  /** Persist lag p99 (ms, accepted → row in PostgreSQL) above which the alarm fires. */
  readonly persistLagP99Ms: number;
  /** Failed invocations of a consumer (or the outbox relay) per period above which the alarm fires. */
  readonly consumerErrors: number;
  /** Failed invocations of the HTTP route functions (together), and of the WebSocket ones, per period. */
  readonly routeFunctionErrors: number;
  /** HTTP API 5xx answers per period above which the alarm fires. */
  readonly api5xx: number;
  /** Age of the oldest message in a main queue (seconds) above which the alarm fires. */
  readonly queueOldestMessageSeconds: number;
  /** Aurora capacity used, % of maxCapacity, above which the alarm fires. */
  readonly auroraCapacityPercent: number;
  /** RDS Proxy: average time to borrow a database connection (ms) above which the alarm fires. */
  readonly proxyBorrowLatencyMs: number;
  /** Period of every alarm, and how many consecutive breaching periods raise it. */
  readonly periodMinutes: number;
  readonly evaluationPeriods: number;
}

/**
 * The outbox relay forwards messages committed synchronously (SQS-down fallback, rollback mode) to
 * the analytics queue. Every run connects to PostgreSQL, so its schedule decides whether a pausable
 * Aurora ever pauses.
 */
export interface OutboxRelayConfig {
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  /** Minutes between scheduled runs (1–1440). */
  readonly intervalMinutes: number;
  /**
   * Also run when messages start and stop going to the outbox (an alarm on the fallback, cache-skip
   * and hand-off metrics and the SQS and Redis breakers invokes the relay): the outbox only fills
   * while SQS or Redis is unreachable, or in rollback mode, so the schedule can be slow.
   */
  readonly runOnQueueFallback: boolean;
}

export interface RetentionConfig {
  /** MESSAGE_RETENTION_DAYS (1–36,500). */
  readonly messageRetentionDays: number;
  /** Hours between runs of the retention function (1–24). Each run connects to PostgreSQL. */
  readonly everyHours: number;
}

export interface ClickHouseConfig {
  /** Name of the Secrets Manager secret {url, username, password, database} created beforehand. */
  readonly secretName: string;
  /**
   * ClickHouse Cloud over AWS PrivateLink instead of the internet: the endpoint service name
   * (`com.amazonaws.vpce.<region>.vpce-svc-…`) shown by ClickHouse Cloud. The Network stack
   * creates an interface endpoint with private DNS; register its id with the ClickHouse service
   * before the App stack is deployed. @default over the internet, through NAT
   */
  readonly privateLinkServiceName?: string;
  /** Port of the HTTPS interface behind PrivateLink. @default 8443 */
  readonly privateLinkPort?: number;
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
  /**
   * The persist bound (PERSIST_BOUND_SECONDS): every accepted message is in PostgreSQL and known to
   * Redis within this long. Resuming subscribers that cannot replay by position catch up from
   * "now minus the bound"; it must outlast the consumers' retry delays and the outages to ride out.
   */
  readonly persistBoundSeconds: number;
  readonly outboxRelay: OutboxRelayConfig;
  /**
   * Retention: threads whose newest message is older than `messageRetentionDays` are erased (the
   * path of DELETE /api/threads/{id}), checked every `everyHours`. @default none (kept)
   */
  readonly retention?: RetentionConfig;
  readonly auth: AuthConfig;
  /**
   * The web client as a static site (S3 + CloudFront), its origin added to the API's CORS origins.
   * `signIn`: how its page signs in — an OIDC provider (a Cognito hosted UI, with PKCE), or a
   * pasted token. @default pasted token
   */
  readonly webClient: { readonly enabled: boolean; readonly signIn?: WebSignIn };
  readonly clickhouse: ClickHouseConfig;
  readonly alarms: AlarmsConfig;
}
