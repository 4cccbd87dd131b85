/**
 * What every function shares: its environment variables (the names `lambdas/runtime/config.ts`
 * reads, type-checked against it), where it runs, and the access each one is granted — by need,
 * not by default.
 */
import type { RemovalPolicy } from "aws-cdk-lib";
import type * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { FunctionNeed } from "../../lambdas/handlers/catalog.ts";
import type { Env } from "../../lambdas/runtime/config.ts";
import { METRICS_NAMESPACE, SERVICE_NAME } from "../../lambdas/runtime/metric-names.ts";
import type { AcceptMode, LogLevel } from "../config/types.ts";
import type { JwtSettings } from "./identity.ts";

/** Lambda's bundle of CA certificates, which includes the RDS ones (TLS to RDS Proxy and Aurora). */
export const LAMBDA_CA_BUNDLE = "/var/runtime/ca-cert.pem";

export interface RuntimeSettings {
  readonly appEnv: string;
  readonly acceptMode: AcceptMode;
  readonly logLevel: LogLevel;
  readonly redisUrl: string;
  readonly redisAuthSecretArn: string;
  readonly redisKeyPrefix: string;
  readonly databaseSecretArn: string;
  /** RDS Proxy endpoint, or the cluster's writer endpoint when there is no proxy. */
  readonly databaseHost: string;
  readonly databaseName: string;
  readonly persistQueueUrl: string;
  readonly analyticsQueueUrl: string;
  readonly erasureQueueUrl: string;
  readonly clickhouseSecretArn: string;
  readonly jwt: JwtSettings;
  readonly retryBaseDelaySeconds: number;
  readonly retryMaxDelaySeconds: number;
  readonly persistBoundSeconds: number;
  /** ERASURE_SETTLE_SECONDS: the longest function timeout, and a margin (docs/erasure.md). */
  readonly erasureSettleSeconds: number;
  /** MESSAGE_RETENTION_DAYS (unset: threads are kept). */
  readonly messageRetentionDays?: number;
}

type RuntimeVariables = Partial<Record<keyof Env, string>>;

/** Variables read by the Powertools libraries and by Node itself, the same for every function. */
export const PLATFORM_ENVIRONMENT = {
  POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
  POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
  NODE_EXTRA_CA_CERTS: LAMBDA_CA_BUNDLE,
  NODE_OPTIONS: "--enable-source-maps",
} as const;

/**
 * The environment of a pipeline function. Every function gets the whole configuration (the
 * runtime refuses to start without the queue URLs, database and JWT settings), but only the
 * grants it needs: a URL or an ARN is not access.
 */
export const functionEnvironment = (
  s: RuntimeSettings,
  extra: { readonly pgPoolMax: number; readonly webSocketApiEndpoint?: string },
): Record<string, string> => {
  const runtime: RuntimeVariables = {
    APP_ENV: s.appEnv,
    ACCEPT_MODE: s.acceptMode,
    LOG_LEVEL: s.logLevel,
    REDIS_URL: s.redisUrl,
    REDIS_CLUSTER: "true",
    REDIS_KEY_PREFIX: s.redisKeyPrefix,
    REDIS_AUTH_SECRET_ARN: s.redisAuthSecretArn,
    DATABASE_SECRET_ARN: s.databaseSecretArn,
    DATABASE_HOST: s.databaseHost,
    DATABASE_NAME: s.databaseName,
    DATABASE_SSL: "true",
    PG_POOL_MAX: String(extra.pgPoolMax),
    PERSIST_QUEUE_URL: s.persistQueueUrl,
    ANALYTICS_QUEUE_URL: s.analyticsQueueUrl,
    ERASURE_QUEUE_URL: s.erasureQueueUrl,
    CLICKHOUSE_SECRET_ARN: s.clickhouseSecretArn,
    JWT_JWKS_URL: s.jwt.jwksUrl,
    JWT_ISSUER: s.jwt.issuer,
    JWT_ROLES_CLAIM: s.jwt.rolesClaim,
    RETRY_BASE_DELAY_SECONDS: String(s.retryBaseDelaySeconds),
    RETRY_MAX_DELAY_SECONDS: String(s.retryMaxDelaySeconds),
    PERSIST_BOUND_SECONDS: String(s.persistBoundSeconds),
    ERASURE_SETTLE_SECONDS: String(s.erasureSettleSeconds),
    ...(s.messageRetentionDays !== undefined
      ? { MESSAGE_RETENTION_DAYS: String(s.messageRetentionDays) }
      : {}),
    ...(s.jwt.audience !== undefined ? { JWT_AUDIENCE: s.jwt.audience } : {}),
    ...(extra.webSocketApiEndpoint !== undefined
      ? { WEBSOCKET_API_ENDPOINT: extra.webSocketApiEndpoint }
      : {}),
  };
  return { ...(runtime as Record<string, string>), ...PLATFORM_ENVIRONMENT };
};

/** Where functions run and how long their logs live. */
export interface Placement {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroups: readonly ec2.ISecurityGroup[];
  readonly logRetention: logs.RetentionDays;
  readonly logRemovalPolicy: RemovalPolicy;
}

/**
 * Something a function may be granted: the catalog's route needs, and the consumers' (the same
 * names; the feedback routes, like the persist consumer, send to the analytics queue).
 */
export type Need = FunctionNeed;

/** The resources behind each need. */
export interface Resources {
  readonly redisAuthSecret: secretsmanager.ISecret;
  readonly databaseAppSecret: secretsmanager.ISecret;
  readonly clickhouseSecret: secretsmanager.ISecret;
  readonly persistQueue: sqs.IQueue;
  readonly analyticsQueue: sqs.IQueue;
  readonly erasureQueue: sqs.IQueue;
  /** Set once the WebSocket stage exists. */
  readonly webSocketStage?: apigwv2.WebSocketStage;
}

export const grantNeeds = (grantee: iam.IGrantable, needs: readonly Need[], r: Resources): void => {
  for (const need of new Set(needs)) {
    switch (need) {
      case "redis":
        r.redisAuthSecret.grantRead(grantee);
        break;
      case "database":
        r.databaseAppSecret.grantRead(grantee);
        break;
      case "clickhouse":
        r.clickhouseSecret.grantRead(grantee);
        break;
      case "sendToPersistQueue":
        r.persistQueue.grantSendMessages(grantee);
        break;
      case "readPersistQueue":
        // The health check's ping: GetQueueAttributes only.
        r.persistQueue.grant(grantee, "sqs:GetQueueAttributes");
        break;
      case "sendToAnalyticsQueue":
        r.analyticsQueue.grantSendMessages(grantee);
        break;
      case "sendToErasureQueue":
        r.erasureQueue.grantSendMessages(grantee);
        break;
      case "manageConnections":
        if (r.webSocketStage === undefined) throw new Error("manageConnections needs the WebSocket stage");
        // execute-api:ManageConnections on this API's stage only.
        r.webSocketStage.grantManagementApiAccess(grantee);
        break;
    }
  }
};
