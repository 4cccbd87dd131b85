/**
 * Schema migrations on deploy: a custom resource backed by lambdas/handlers/deploy/migrate-schema.ts
 * applies the pending PostgreSQL and ClickHouse migrations and (re)grants the application's
 * database user. Its properties carry a hash of the migrations and of the handler, so
 * CloudFormation runs it whenever either changes (and on the first deploy); `runId` forces a run.
 * The route, consumer and relay functions depend on it: CloudFormation updates them only after
 * the migrations succeeded, and a failed migration rolls the deploy back before any new handler
 * takes traffic.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CustomResource, Duration } from "aws-cdk-lib";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { CLICKHOUSE_MIGRATIONS } from "../../lambdas/adapters/clickhouse/migrations/index.ts";
import { MIGRATIONS } from "../../lambdas/adapters/postgres/migrations/index.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction, REPO_ROOT } from "./chat-function.ts";
import { POSTGRES_PORT } from "./database.ts";
import { PLATFORM_ENVIRONMENT, type Placement } from "./runtime.ts";

export const MIGRATION_HANDLER_ENTRY = "lambdas/handlers/deploy/migrate-schema.ts";

/** Changes whenever a migration or the migration handler changes. */
export const migrationsFingerprint = (extra: Readonly<Record<string, string>> = {}): string =>
  createHash("sha256")
    .update(
      JSON.stringify({
        postgres: MIGRATIONS,
        clickhouse: CLICKHOUSE_MIGRATIONS,
        handler: readFileSync(join(REPO_ROOT, MIGRATION_HANDLER_ENTRY), "utf8"),
        extra,
      }),
    )
    .digest("hex");

export interface SchemaMigrationProps {
  readonly appEnv: string;
  /** Master credentials (DDL, role management). */
  readonly adminSecret: secretsmanager.ISecret;
  /** Credentials {username, password} of the application user to create and grant. */
  readonly appSecret: secretsmanager.ISecret;
  readonly clickhouseSecret: secretsmanager.ISecret;
  /** Writer endpoint of the cluster (not the proxy: the proxy only knows the application user). */
  readonly databaseHost: string;
  /** @default "5432" */
  readonly databasePort?: string;
  readonly databaseName: string;
  /** Placement of the function; its security group must reach the cluster. */
  readonly placement: Placement;
  /** Anything here forces a run (e.g. a timestamp). @default none */
  readonly runId?: string;
  /** @default Duration.minutes(5) */
  readonly timeout?: Duration;
}

export class SchemaMigration extends Construct {
  readonly function: ChatFunction;
  readonly resource: CustomResource;
  readonly fingerprint: string;

  constructor(scope: Construct, id: string, props: SchemaMigrationProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.minutes(5);
    new Problems()
      .integer("timeout (s)", timeout.toSeconds(), 60, 900)
      .check(props.runId === undefined || props.runId.length <= 64, "runId must be at most 64 characters")
      .throwIfAny(`props of ${this.node.path}`);

    this.function = new ChatFunction(this, "Handler", {
      entry: MIGRATION_HANDLER_ENTRY,
      description: "Custom::SchemaMigration (PostgreSQL and ClickHouse)",
      memoryMb: 512,
      timeout,
      environment: {
        APP_ENV: props.appEnv,
        DATABASE_ADMIN_SECRET_ARN: props.adminSecret.secretArn,
        DATABASE_APP_SECRET_ARN: props.appSecret.secretArn,
        DATABASE_HOST: props.databaseHost,
        DATABASE_PORT: props.databasePort ?? String(POSTGRES_PORT),
        DATABASE_NAME: props.databaseName,
        // A secret name is a valid SecretId (unlike a partial ARN, unambiguous).
        CLICKHOUSE_SECRET_ARN: props.clickhouseSecret.secretName,
        ...PLATFORM_ENVIRONMENT,
      },
      ...props.placement,
    });
    for (const secret of [props.adminSecret, props.appSecret, props.clickhouseSecret]) {
      secret.grantRead(this.function.function);
    }

    this.fingerprint = migrationsFingerprint({ databaseName: props.databaseName });
    const latest = (versions: readonly { version: number }[]): string =>
      String(Math.max(0, ...versions.map((m) => m.version)));
    this.resource = new CustomResource(this, "Run", {
      serviceToken: this.function.function.functionArn,
      resourceType: "Custom::SchemaMigration",
      // CloudFormation gives up on a silent handler after this long instead of the default hour.
      serviceTimeout: Duration.seconds(timeout.toSeconds() + 120),
      properties: {
        MigrationsHash: this.fingerprint,
        PostgresVersion: latest(MIGRATIONS),
        ClickHouseVersion: latest(CLICKHOUSE_MIGRATIONS),
        ...(props.runId !== undefined ? { RunId: props.runId } : {}),
      },
    });
  }

  /** Makes `dependent` wait for the migrations (CloudFormation DependsOn). */
  guard(...dependents: readonly Construct[]): void {
    for (const d of dependents) d.node.addDependency(this.resource);
  }
}
