/**
 * The custom-resource protocol of lambdas/handlers/deploy/migrate-schema.ts, with its side
 * effects replaced: CloudFormation always gets an answer, and the right one.
 */
import type { CloudFormationCustomResourceEvent } from "aws-lambda";
import { describe, expect, it } from "vitest";
import {
  type ClickHouseTarget,
  createHandler,
  type MigrationDeps,
  type PostgresTarget,
} from "../../lambdas/handlers/deploy/migrate-schema.ts";

const ENV = {
  DATABASE_ADMIN_SECRET_ARN: "admin",
  DATABASE_APP_SECRET_ARN: "app",
  CLICKHOUSE_SECRET_ARN: "clickhouse",
  DATABASE_HOST: "cluster.example",
  DATABASE_NAME: "chat",
};
const SECRETS: Record<string, unknown> = {
  admin: { username: "chat_admin", password: "admin-password-1" },
  app: { username: "chat_app", password: "app-password-123" },
  clickhouse: { url: "https://ch.example:8443", username: "chat", password: "ch-password", database: "chat" },
};

const event = (type: "Create" | "Update" | "Delete"): CloudFormationCustomResourceEvent =>
  ({
    RequestType: type,
    ServiceToken: "arn:aws:lambda:us-east-1:111111111111:function:migrate",
    ResponseURL: "https://cloudformation-custom-resource-response.example/presigned",
    StackId: "arn:aws:cloudformation:us-east-1:111111111111:stack/ChatPipeline-dev-App/1",
    RequestId: "request-1",
    LogicalResourceId: "SchemaMigrationRun",
    ResourceType: "Custom::SchemaMigration",
    ResourceProperties: { ServiceToken: "x", MigrationsHash: "abc" },
    ...(type === "Create" ? {} : { PhysicalResourceId: "chat-pipeline-schema", OldResourceProperties: {} }),
  }) as CloudFormationCustomResourceEvent;

const context = { getRemainingTimeInMillis: () => 300_000, logStreamName: "2026/01/01/[$LATEST]abc" };

const fakes = (overrides: Partial<MigrationDeps> = {}) => {
  const calls = {
    postgres: [] as PostgresTarget[],
    clickhouse: [] as ClickHouseTarget[],
    responses: [] as unknown[],
  };
  const deps: MigrationDeps = {
    readSecret: async (id) => SECRETS[id],
    migratePostgres: async (t) => {
      calls.postgres.push(t);
      return [1, 2];
    },
    migrateClickHouse: async (t) => {
      calls.clickhouse.push(t);
      return [1];
    },
    respond: async (_url, body) => void calls.responses.push(JSON.parse(body)),
    log: { info: () => undefined, error: () => undefined },
    ...overrides,
  };
  return { deps, calls };
};

describe("Custom::SchemaMigration handler", () => {
  it("migrates PostgreSQL, then ClickHouse, and answers SUCCESS on create and update", async () => {
    for (const type of ["Create", "Update"] as const) {
      const { deps, calls } = fakes();
      await createHandler(deps, ENV)(event(type), context);
      expect(calls.postgres).toEqual([
        {
          host: "cluster.example",
          port: 5432,
          database: "chat",
          ssl: true,
          connectTimeoutMs: 30_000,
          admin: SECRETS.admin,
          app: SECRETS.app,
        },
      ]);
      expect(calls.clickhouse).toEqual([{ ...(SECRETS.clickhouse as object), timeoutMs: 60_000 }]);
      expect(calls.responses).toEqual([
        {
          Status: "SUCCESS",
          PhysicalResourceId: "chat-pipeline-schema",
          StackId: event(type).StackId,
          RequestId: "request-1",
          LogicalResourceId: "SchemaMigrationRun",
          Data: { PostgresApplied: "1,2", ClickHouseApplied: "1" },
        },
      ]);
    }
  });

  it("leaves the schema alone on delete", async () => {
    const { deps, calls } = fakes();
    await createHandler(deps, ENV)(event("Delete"), context);
    expect(calls.postgres).toEqual([]);
    expect(calls.clickhouse).toEqual([]);
    expect(calls.responses).toEqual([expect.objectContaining({ Status: "SUCCESS" })]);
  });

  it("answers FAILED, with the cause, when a migration fails (and skips ClickHouse)", async () => {
    const { deps, calls } = fakes({
      migratePostgres: async () => {
        throw new Error("PostgreSQL migration 2 (x) failed", {
          cause: new Error('relation "y" already exists'),
        });
      },
    });
    await createHandler(deps, ENV)(event("Update"), context);
    expect(calls.clickhouse).toEqual([]);
    const [response] = calls.responses as { Status: string; Reason: string; PhysicalResourceId: string }[];
    expect(response?.Status).toBe("FAILED");
    expect(response?.PhysicalResourceId).toBe("chat-pipeline-schema");
    expect(response?.Reason).toContain('PostgreSQL migration 2 (x) failed: relation "y" already exists');
    expect(response?.Reason).toContain(context.logStreamName);
  });

  it("answers FAILED without echoing a malformed secret", async () => {
    const { deps, calls } = fakes({
      readSecret: async (id) =>
        id === "clickhouse" ? { url: "not a url", password: "s3cret-value" } : SECRETS[id],
    });
    await createHandler(deps, ENV)(event("Create"), context);
    const [response] = calls.responses as { Status: string; Reason: string }[];
    expect(response?.Status).toBe("FAILED");
    expect(response?.Reason).toContain("ClickHouse secret is malformed (url, username, database)");
    expect(response?.Reason).not.toContain("s3cret-value");
    expect(calls.postgres).toEqual([]);
  });

  it("answers FAILED on a missing setting", async () => {
    const { deps, calls } = fakes();
    await createHandler(deps, { ...ENV, DATABASE_HOST: undefined })(event("Create"), context);
    expect(calls.responses).toEqual([
      expect.objectContaining({ Status: "FAILED", Reason: expect.stringContaining("DATABASE_HOST") }),
    ]);
  });

  it("answers FAILED before its own timeout when a migration hangs", async () => {
    const { deps, calls } = fakes({ migratePostgres: () => new Promise<number[]>(() => undefined) });
    const short = { ...context, getRemainingTimeInMillis: () => 15_000 + 50 };
    await createHandler(deps, ENV)(event("Update"), short);
    expect(calls.responses).toEqual([
      expect.objectContaining({ Status: "FAILED", Reason: expect.stringContaining("did not finish") }),
    ]);
  });
});
