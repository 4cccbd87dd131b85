/**
 * Custom::SchemaMigration — the deploy step that brings PostgreSQL and ClickHouse to the schema
 * the new handlers expect. CloudFormation invokes it (Create/Update) before it updates the
 * functions that depend on it; a FAILED answer rolls the deploy back.
 *
 * Create/Update: reads the admin, application-user and ClickHouse secrets; applies the pending
 * PostgreSQL migrations (connecting to the cluster directly, as the admin user) and makes sure the
 * application user exists with its current password and DML grants; then applies the pending
 * ClickHouse migrations. Delete: nothing (the schema outlives the stack).
 *
 * This function answers CloudFormation itself (a PUT to the pre-signed ResponseURL), always,
 * and before its own timeout: a custom resource that never answers blocks the stack.
 */
import { request } from "node:https";
import { Logger } from "@aws-lambda-powertools/logger";
import type {
  CloudFormationCustomResourceEvent,
  CloudFormationCustomResourceResponse,
  Context,
} from "aws-lambda";
import pg from "pg";
import * as z from "zod";
import { createClickHouseClient } from "../../adapters/clickhouse/client.ts";
import { migrateClickHouse } from "../../adapters/clickhouse/migrate.ts";
import { migratePostgres } from "../../adapters/postgres/migrate.ts";
import { applyRoleSettings } from "../../adapters/postgres/session-settings.ts";
import { readSecretJson } from "../../adapters/secrets.ts";
import { SERVICE_NAME } from "../../runtime/metric-names.ts";

const PHYSICAL_RESOURCE_ID = "chat-pipeline-schema";
/** Answer FAILED this long before the Lambda timeout rather than not at all. */
const SAFETY_MARGIN_MS = 15_000;
/** CloudFormation's limit on the whole response body is 4 KB. */
const MAX_REASON_LENGTH = 1_000;

const settingsSchema = z.object({
  DATABASE_ADMIN_SECRET_ARN: z.string().min(1),
  DATABASE_APP_SECRET_ARN: z.string().min(1),
  DATABASE_HOST: z.string().min(1),
  DATABASE_PORT: z.coerce.number().int().min(1).max(65_535).default(5432),
  DATABASE_NAME: z.string().min(1).default("chat"),
  DATABASE_SSL: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true"),
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(1).default(30_000),
  CLICKHOUSE_SECRET_ARN: z.string().min(1),
  CLICKHOUSE_TIMEOUT_MS: z.coerce.number().int().min(1).default(60_000),
});

export type MigrationSettings = z.infer<typeof settingsSchema>;

export const parseSettings = (env: Record<string, string | undefined>): MigrationSettings => {
  const result = settingsSchema.safeParse(env);
  if (!result.success) {
    throw new Error(
      `Invalid configuration: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  return result.data;
};

const credentialsSchema = z.object({
  username: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a plain lowercase identifier"),
  password: z.string().min(8),
});
const clickHouseSecretSchema = z.object({
  url: z.url(),
  username: z.string().min(1),
  password: z.string(),
  database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a plain identifier"),
});

export interface PostgresTarget {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly ssl: boolean;
  readonly connectTimeoutMs: number;
  readonly admin: { readonly username: string; readonly password: string };
  readonly app: { readonly username: string; readonly password: string };
}

export interface ClickHouseTarget {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly database: string;
  readonly timeoutMs: number;
}

/** The side effects, replaceable in tests. */
export interface MigrationDeps {
  readSecret(secretId: string): Promise<unknown>;
  migratePostgres(target: PostgresTarget): Promise<number[]>;
  migrateClickHouse(target: ClickHouseTarget): Promise<number[]>;
  /** PUTs the response to CloudFormation's pre-signed URL. */
  respond(responseUrl: string, body: string): Promise<void>;
  log: Pick<Logger, "info" | "error">;
}

/**
 * Creates the application role if it is missing, sets its password from its secret, and grants
 * it DML on the application's tables (and future ones) — nothing else: no DDL, no role
 * management, no writes to the migration ledger.
 */
export const ensureAppRole = async (
  client: pg.ClientBase,
  database: string,
  app: { readonly username: string; readonly password: string },
): Promise<void> => {
  const role = client.escapeIdentifier(app.username);
  const exists = await client.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [app.username]);
  const verb = (exists.rowCount ?? 0) > 0 ? "ALTER" : "CREATE";
  await client.query(
    `${verb} ROLE ${role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${client.escapeLiteral(app.password)}`,
  );
  const statements = [
    `GRANT CONNECT ON DATABASE ${client.escapeIdentifier(database)} TO ${role}`,
    `GRANT USAGE ON SCHEMA public TO ${role}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`,
    `GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${role}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${role}`,
    `REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM ${role}`,
  ];
  for (const statement of statements) await client.query(statement);
  await applyRoleSettings(client, app.username, database);
};

export const postgresMigrator = async (target: PostgresTarget): Promise<number[]> => {
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.admin.username,
    password: target.admin.password,
    ssl: target.ssl ? { rejectUnauthorized: true } : false,
    connectionTimeoutMillis: target.connectTimeoutMs,
    application_name: "chat-pipeline-migrations",
  });
  await client.connect();
  try {
    const applied = await migratePostgres(client);
    await ensureAppRole(client, target.database, target.app);
    return applied;
  } finally {
    await client.end().catch(() => undefined);
  }
};

export const clickHouseMigrator = async (target: ClickHouseTarget): Promise<number[]> => {
  const common = {
    url: target.url,
    username: target.username,
    password: target.password,
    timeoutMs: target.timeoutMs,
  };
  const admin = createClickHouseClient(common);
  const db = createClickHouseClient({ ...common, database: target.database });
  try {
    return await migrateClickHouse(admin, db, target.database);
  } finally {
    await Promise.allSettled([admin.close(), db.close()]);
  }
};

/** PUT with an empty content type, as the pre-signed URL expects. */
const respond = (responseUrl: string, body: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const req = request(
      responseUrl,
      {
        method: "PUT",
        headers: { "content-type": "", "content-length": Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          (res.statusCode ?? 500) < 300
            ? resolve()
            : reject(new Error(`CloudFormation response rejected: HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("CloudFormation response timed out")));
    req.on("error", reject);
    req.end(body);
  });

const parseSecret = <T>(schema: z.ZodType<T>, value: unknown, what: string): T => {
  const result = schema.safeParse(value);
  if (!result.success) {
    // Never echo the secret: only the paths of the bad fields.
    throw new Error(
      `${what} secret is malformed (${result.error.issues.map((i) => i.path.join(".")).join(", ")})`,
    );
  }
  return result.data;
};

export const migrateAll = async (
  settings: MigrationSettings,
  deps: Pick<MigrationDeps, "readSecret" | "migratePostgres" | "migrateClickHouse">,
): Promise<{ postgres: number[]; clickhouse: number[] }> => {
  const [adminRaw, appRaw, clickHouseRaw] = await Promise.all([
    deps.readSecret(settings.DATABASE_ADMIN_SECRET_ARN),
    deps.readSecret(settings.DATABASE_APP_SECRET_ARN),
    deps.readSecret(settings.CLICKHOUSE_SECRET_ARN),
  ]);
  const admin = parseSecret(credentialsSchema, adminRaw, "PostgreSQL admin");
  const app = parseSecret(credentialsSchema, appRaw, "PostgreSQL application user");
  const clickHouse = parseSecret(clickHouseSecretSchema, clickHouseRaw, "ClickHouse");
  const postgres = await deps.migratePostgres({
    host: settings.DATABASE_HOST,
    port: settings.DATABASE_PORT,
    database: settings.DATABASE_NAME,
    ssl: settings.DATABASE_SSL,
    connectTimeoutMs: settings.DATABASE_CONNECT_TIMEOUT_MS,
    admin,
    app,
  });
  const clickhouse = await deps.migrateClickHouse({
    ...clickHouse,
    timeoutMs: settings.CLICKHOUSE_TIMEOUT_MS,
  });
  return { postgres, clickhouse };
};

const withDeadline = <T>(work: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`migrations did not finish within ${Math.round(ms / 1000)} s`)),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
};

const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
};

export const createHandler =
  (deps: MigrationDeps, env: Record<string, string | undefined> = process.env) =>
  async (
    event: CloudFormationCustomResourceEvent,
    context: Pick<Context, "getRemainingTimeInMillis" | "logStreamName">,
  ) => {
    const physicalResourceId =
      event.RequestType === "Create" ? PHYSICAL_RESOURCE_ID : event.PhysicalResourceId;
    const common = {
      PhysicalResourceId: physicalResourceId,
      StackId: event.StackId,
      RequestId: event.RequestId,
      LogicalResourceId: event.LogicalResourceId,
    };
    let response: CloudFormationCustomResourceResponse;
    if (event.RequestType === "Delete") {
      deps.log.info("delete: nothing to do, the schema outlives the stack");
      response = { ...common, Status: "SUCCESS" };
    } else {
      try {
        const settings = parseSettings(env);
        const budget = Math.max(1_000, context.getRemainingTimeInMillis() - SAFETY_MARGIN_MS);
        const applied = await withDeadline(migrateAll(settings, deps), budget);
        deps.log.info("schema migrations done", { requestType: event.RequestType, applied });
        response = {
          ...common,
          Status: "SUCCESS",
          Data: {
            PostgresApplied: applied.postgres.join(","),
            ClickHouseApplied: applied.clickhouse.join(","),
          },
        };
      } catch (error) {
        deps.log.error("schema migrations failed", { error: error as Error });
        const reason = `${describe(error)} (log stream ${context.logStreamName})`;
        response = { ...common, Status: "FAILED", Reason: reason.slice(0, MAX_REASON_LENGTH) };
      }
    }
    await deps.respond(event.ResponseURL, JSON.stringify(response));
    return response;
  };

export const handler = createHandler({
  readSecret: (secretId) => readSecretJson(secretId),
  migratePostgres: postgresMigrator,
  migrateClickHouse: clickHouseMigrator,
  respond,
  log: new Logger({ serviceName: SERVICE_NAME, persistentKeys: { component: "schema-migration" } }),
});
