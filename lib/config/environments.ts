/**
 * The deployment environments. `cdk deploy -c env=<name>` selects one (see bin/app.ts).
 *
 * dev: cheap when idle and destroyable: two AZs, one NAT instance, no interface endpoints, a
 * single-instance Aurora Serverless v2 cluster that pauses when unused (so no RDS Proxy, and an
 * outbox relay that runs when the accept path falls back to PostgreSQL, plus once a day), small
 * cache limits, a week of logs; everything is deleted with its stack.
 * prod: three AZs with a NAT gateway each, RDS Proxy, a writer and a reader in different AZs,
 * backups for two weeks, deletion protection, termination protection on the Data stack, data
 * retained when a stack is deleted.
 *
 * Replace the account ids, the alarm endpoints and the allowed browser origins with yours before
 * the first deploy (docs/deploy.md).
 */
import type { ConsumerConfig, EnvironmentConfig } from "./types.ts";

/** The erasure worker, the same everywhere: few records, each a short run of statements on every tier. */
const ERASURE_WORKER: ConsumerConfig = {
  batchSize: 10,
  maxBatchingWindowSeconds: 0,
  maxConcurrency: 2,
  timeoutSeconds: 60,
  memoryMb: 512,
  maxReceiveCount: 10,
  pgPoolMax: 1,
};

export const dev: EnvironmentConfig = {
  name: "dev",
  account: "111111111111",
  region: "us-east-1",
  dataRetention: "destroy",
  terminationProtection: false,
  acceptMode: "queued",
  logLevel: "INFO",
  logRetentionDays: 7,
  network: {
    maxAzs: 2,
    egress: { kind: "natInstance", instanceType: "t4g.nano" },
    interfaceEndpoints: [],
    flowLogs: false,
  },
  database: {
    engineVersion: "17.7",
    minCapacity: 0,
    maxCapacity: 4,
    connection: "direct",
    autoPauseAfterMinutes: 10,
    readers: 0,
    backupRetentionDays: 1,
    deletionProtection: false,
    databaseName: "chat",
  },
  cache: { majorEngineVersion: "8", maxDataStorageGb: 1, maxEcpuPerSecond: 5_000, snapshotRetentionDays: 0 },
  queues: {
    retentionDays: 4,
    persist: {
      batchSize: 50,
      maxBatchingWindowSeconds: 1,
      maxConcurrency: 2,
      timeoutSeconds: 30,
      memoryMb: 512,
      maxReceiveCount: 5,
      pgPoolMax: 2,
    },
    analytics: {
      batchSize: 200,
      maxBatchingWindowSeconds: 5,
      maxConcurrency: 2,
      timeoutSeconds: 60,
      memoryMb: 512,
      maxReceiveCount: 5,
      pgPoolMax: 1,
    },
    erasure: ERASURE_WORKER,
  },
  api: {
    memoryMb: 512,
    timeoutSeconds: 10,
    pgPoolMax: 2,
    throttleRatePerSecond: 50,
    throttleBurst: 100,
    webSocketStageName: "dev",
    // A web client served from a developer's machine.
    corsAllowedOrigins: ["http://localhost:3000", "http://127.0.0.1:3000"],
    corsMaxAgeSeconds: 600,
    jwtAuthorizer: true,
  },
  retry: { baseDelaySeconds: 5, maxDelaySeconds: 120 },
  persistBoundSeconds: 1_800,
  // The outbox only fills while SQS is down (or in rollback mode): run then, and once a day.
  outboxRelay: { timeoutSeconds: 50, memoryMb: 256, intervalMinutes: 1_440, runOnQueueFallback: true },
  // Passwords may be sent to Cognito directly (scripts, the curl examples of docs/deploy.md).
  auth: { kind: "cognito", passwordAuth: true },
  // Turn on to check the environment from a browser (docs/deploy.md, "The web client").
  webClient: { enabled: false },
  clickhouse: { secretName: "chat-pipeline/dev/clickhouse" },
  alarms: {
    emails: [],
    snsTopicArns: [],
    acceptLatencyP99Ms: 1_000,
    persistLagP99Ms: 60_000,
    consumerErrors: 0,
    routeFunctionErrors: 5,
    api5xx: 10,
    queueOldestMessageSeconds: 900,
    auroraCapacityPercent: 90,
    proxyBorrowLatencyMs: 100,
    periodMinutes: 5,
    evaluationPeriods: 3,
  },
};

export const prod: EnvironmentConfig = {
  name: "prod",
  account: "222222222222",
  region: "us-east-1",
  dataRetention: "retain",
  terminationProtection: true,
  acceptMode: "queued",
  logLevel: "INFO",
  logRetentionDays: 90,
  network: {
    maxAzs: 3,
    egress: { kind: "natGateway", count: 3 },
    interfaceEndpoints: ["sqs", "secretsmanager"],
    flowLogs: true,
  },
  database: {
    engineVersion: "17.7",
    minCapacity: 2,
    maxCapacity: 32,
    connection: "proxy",
    readers: 1,
    backupRetentionDays: 14,
    deletionProtection: true,
    databaseName: "chat",
  },
  cache: {
    majorEngineVersion: "8",
    maxDataStorageGb: 20,
    maxEcpuPerSecond: 100_000,
    snapshotRetentionDays: 7,
  },
  queues: {
    retentionDays: 14,
    persist: {
      batchSize: 100,
      maxBatchingWindowSeconds: 1,
      maxConcurrency: 10,
      timeoutSeconds: 30,
      memoryMb: 1024,
      maxReceiveCount: 20,
      pgPoolMax: 2,
    },
    analytics: {
      batchSize: 500,
      maxBatchingWindowSeconds: 10,
      maxConcurrency: 4,
      timeoutSeconds: 60,
      memoryMb: 1024,
      maxReceiveCount: 20,
      pgPoolMax: 1,
    },
    erasure: ERASURE_WORKER,
  },
  api: {
    memoryMb: 1024,
    timeoutSeconds: 10,
    pgPoolMax: 2,
    throttleRatePerSecond: 1_000,
    throttleBurst: 2_000,
    webSocketStageName: "prod",
    corsAllowedOrigins: ["https://chat.example.com"],
    corsMaxAgeSeconds: 7_200,
    jwtAuthorizer: true,
  },
  retry: { baseDelaySeconds: 10, maxDelaySeconds: 900 },
  persistBoundSeconds: 3_600,
  outboxRelay: { timeoutSeconds: 50, memoryMb: 512, intervalMinutes: 1, runOnQueueFallback: true },
  // Sign-in with SRP only (no password sent to Cognito); OAuth off until a web client needs it.
  auth: { kind: "cognito", passwordAuth: false },
  // Teams bring their own front end to production; turn it on to check an environment from a browser.
  webClient: { enabled: false },
  clickhouse: { secretName: "chat-pipeline/prod/clickhouse" },
  alarms: {
    emails: ["chat-oncall@example.com"],
    snsTopicArns: [],
    acceptLatencyP99Ms: 500,
    persistLagP99Ms: 30_000,
    consumerErrors: 0,
    routeFunctionErrors: 0,
    api5xx: 5,
    queueOldestMessageSeconds: 300,
    auroraCapacityPercent: 80,
    proxyBorrowLatencyMs: 50,
    periodMinutes: 5,
    evaluationPeriods: 2,
  },
};

/** Every environment `-c env=<name>` can select, by name. */
export const ENVIRONMENTS: Readonly<Record<string, EnvironmentConfig>> = { dev, prod };

export class UnknownEnvironmentError extends Error {
  override readonly name = "UnknownEnvironmentError";
}

/** The environment called `name`; an unknown or missing name fails with the list of known ones. */
export const selectEnvironment = (
  name: string | undefined,
  environments: Readonly<Record<string, EnvironmentConfig>> = ENVIRONMENTS,
): EnvironmentConfig => {
  const known = Object.keys(environments).sort();
  const selected = name === undefined ? undefined : environments[name];
  if (selected === undefined) {
    const what = name === undefined ? "No environment selected" : `Unknown environment "${name}"`;
    throw new UnknownEnvironmentError(
      `${what}. Known environments: ${known.join(", ")}. Select one with -c env=<name>, e.g. npx cdk synth -c env=${known[0] ?? "dev"}.`,
    );
  }
  return selected;
};
