import { defineConfig } from "vitest/config";

/**
 * Three kinds of test, kept apart:
 *  - unit: the core, with in-memory fakes of its ports; no network;
 *  - integration: real Redis, PostgreSQL, ClickHouse and an SQS endpoint, through the local stack;
 *  - browser: the web client in headless Chromium (Debian's package), against the local stack;
 *  - infra: the CDK app's synthesized templates.
 */
export default defineConfig({
  test: {
    env: { AWS_EC2_METADATA_DISABLED: "true" },
    pool: "forks",
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"] },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          maxWorkers: 2,
        },
      },
      {
        // The same integration tests against a 3-master Redis Cluster (as ElastiCache Serverless
        // is): every multi-key operation must stay within one hash slot. Their PostgreSQL traffic
        // goes through PgBouncer in transaction pooling mode, as it goes through RDS Proxy in AWS:
        // a startup parameter it refuses or session state it cannot keep fails here.
        extends: true,
        test: {
          name: "integration-cluster",
          include: ["test/integration/**/*.test.ts"],
          // Standalone by design (a private server to flush) / bound to LocalStack's fixed port.
          exclude: ["test/integration/redis-flush.test.ts", "test/integration/localstack-endpoint.test.ts"],
          env: {
            TEST_REDIS_URL: "redis://127.0.0.1:7001",
            TEST_REDIS_CLUSTER: "true",
            TEST_PGBOUNCER_PORT: "6432",
          },
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          maxWorkers: 1,
          // After every other project, alone: Chromium and the stack it drives need the two cores.
          // Run beside the CDK syntheses and the other stacks, a Redis call of the WebSocket
          // $connect timed out on a starved event loop (503), and the page logged the handshake.
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: { name: "infra", include: ["test/infra/**/*.test.ts"], testTimeout: 120_000 },
      },
    ],
  },
});
