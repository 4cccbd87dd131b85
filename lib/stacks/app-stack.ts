import { CfnOutput, Duration, Stack, type StackProps, Tokenization } from "aws-cdk-lib";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config/types.ts";
import type { AlarmTopic } from "../constructs/alarm-topic.ts";
import { Consumers } from "../constructs/consumers.ts";
import { HttpApi } from "../constructs/http-api.ts";
import type { Network } from "../constructs/network.ts";
import { Observability } from "../constructs/observability.ts";
import { OutboxRelay } from "../constructs/outbox-relay.ts";
import { Retention } from "../constructs/retention.ts";
import type { Placement, Resources, RuntimeSettings } from "../constructs/runtime.ts";
import { SchemaMigration } from "../constructs/schema-migration.ts";
import { WebClient } from "../constructs/web-client.ts";
import { WebSocketApi } from "../constructs/websocket-api.ts";
import type { DataStack } from "./data-stack.ts";
import { logRetention, removalPolicy } from "./policies.ts";

export interface AppStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly network: Network;
  /** Where the alarms go (created in the Network stack). */
  readonly alarmTopic: AlarmTopic;
  readonly data: DataStack;
  /** Forces the schema-migration step to run on this deploy. @default runs when the migrations change */
  readonly schemaMigrationRunId?: string;
}

/**
 * Everything stateless: the functions, the HTTP and WebSocket APIs, the consumers and the outbox
 * relay, the schema-migration step that gates them, the dashboard and the alarms.
 */
/**
 * How long writers in flight when a thread is deleted may still write: the longest timeout of a
 * function that writes a thread's data, and a margin (ERASURE_SETTLE_SECONDS).
 */
export const erasureSettleSeconds = (config: EnvironmentConfig): number =>
  Math.max(
    config.api.timeoutSeconds,
    config.queues.persist.timeoutSeconds,
    config.queues.analytics.timeoutSeconds,
    config.outboxRelay.timeoutSeconds,
  ) + 30;

export class AppStack extends Stack {
  readonly httpApi: HttpApi;
  readonly webSocketApi: WebSocketApi;
  readonly consumers: Consumers;
  readonly outboxRelay: OutboxRelay;
  /** Where the environment sets a retention period. */
  readonly retention?: Retention;
  /** The web client's static site, where the environment turns it on. */
  readonly webClient?: WebClient;
  readonly schemaMigration: SchemaMigration;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: AppStackProps) {
    super(scope, id, props);
    const { config, network, data } = props;
    const clickhouseSecret = secretsmanager.Secret.fromSecretNameV2(
      this,
      "ClickHouseSecret",
      config.clickhouse.secretName,
    );

    const runtime: RuntimeSettings = {
      appEnv: config.name,
      acceptMode: config.acceptMode,
      logLevel: config.logLevel,
      redisUrl: data.cache.url,
      redisAuthSecretArn: data.cache.authSecret.secretArn,
      redisKeyPrefix: data.cache.keyPrefix,
      databaseSecretArn: data.database.appSecret.secretArn,
      databaseHost: data.database.functionsEndpoint,
      databaseName: data.database.databaseName,
      persistQueueUrl: data.queues.persist.queue.queueUrl,
      analyticsQueueUrl: data.queues.analytics.queue.queueUrl,
      erasureQueueUrl: data.queues.erasure.queue.queueUrl,
      // A secret name is a valid SecretId, and unlike a partial ARN it is unambiguous.
      clickhouseSecretArn: clickhouseSecret.secretName,
      jwt: data.identity.jwt,
      retryBaseDelaySeconds: config.retry.baseDelaySeconds,
      retryMaxDelaySeconds: config.retry.maxDelaySeconds,
      persistBoundSeconds: config.persistBoundSeconds,
      erasureSettleSeconds: erasureSettleSeconds(config),
      ...(config.retention !== undefined
        ? { messageRetentionDays: config.retention.messageRetentionDays }
        : {}),
    };
    const placement: Placement = {
      vpc: network.vpc,
      subnets: network.appSubnets,
      securityGroups: [network.securityGroups.functions],
      logRetention: logRetention(config),
      logRemovalPolicy: removalPolicy(config),
    };
    const resources: Resources = {
      redisAuthSecret: data.cache.authSecret,
      databaseAppSecret: data.database.appSecret,
      clickhouseSecret,
      persistQueue: data.queues.persist.queue,
      analyticsQueue: data.queues.analytics.queue,
      erasureQueue: data.queues.erasure.queue,
    };
    const throttle = { rateLimit: config.api.throttleRatePerSecond, burstLimit: config.api.throttleBurst };
    const functionSettings = {
      memoryMb: config.api.memoryMb,
      timeoutSeconds: config.api.timeoutSeconds,
      pgPoolMax: config.api.pgPoolMax,
    };

    this.schemaMigration = new SchemaMigration(this, "SchemaMigration", {
      appEnv: config.name,
      adminSecret: data.database.adminSecret,
      appSecret: data.database.appSecret,
      clickhouseSecret,
      databaseHost: data.database.cluster.clusterEndpoint.hostname,
      databasePort: Tokenization.stringifyNumber(data.database.cluster.clusterEndpoint.port),
      databaseName: data.database.databaseName,
      placement: { ...placement, securityGroups: [network.securityGroups.migrations] },
      ...(props.schemaMigrationRunId !== undefined ? { runId: props.schemaMigrationRunId } : {}),
    });

    this.webSocketApi = new WebSocketApi(this, "WebSocket", {
      stageName: config.api.webSocketStageName,
      throttle,
      functionSettings,
      placement,
      runtime,
      resources,
    });
    const { jwt } = data.identity;
    if (config.webClient.enabled) {
      this.webClient = new WebClient(this, "WebClient", { removalPolicy: removalPolicy(config) });
    }
    const webOrigins =
      this.webClient !== undefined && !config.api.corsAllowedOrigins.includes("*")
        ? [this.webClient.origin]
        : [];
    this.httpApi = new HttpApi(this, "Http", {
      throttle,
      functionSettings,
      placement,
      runtime,
      resources: { ...resources, webSocketStage: this.webSocketApi.stage },
      webSocketApiEndpoint: this.webSocketApi.callbackUrl,
      cors: {
        allowedOrigins: [...config.api.corsAllowedOrigins, ...webOrigins],
        maxAge: Duration.seconds(config.api.corsMaxAgeSeconds),
      },
      // Validation makes sure there is an audience when the authorizer is on.
      ...(config.api.jwtAuthorizer && jwt.audience !== undefined
        ? { jwtAuthorizer: { issuer: jwt.issuer, audience: jwt.audience } }
        : {}),
    });
    // The persist consumer and the outbox relay push messages they make visible late.
    const pushing = {
      resources: { ...resources, webSocketStage: this.webSocketApi.stage },
      webSocketApiEndpoint: this.webSocketApi.callbackUrl,
    };
    this.consumers = new Consumers(this, "Consumers", {
      persist: { ...config.queues.persist, source: data.queues.persist },
      analytics: { ...config.queues.analytics, source: data.queues.analytics },
      erasure: { ...config.queues.erasure, source: data.queues.erasure },
      placement,
      runtime,
      ...pushing,
    });
    this.outboxRelay = new OutboxRelay(this, "OutboxRelay", {
      intervalMinutes: config.outboxRelay.intervalMinutes,
      runOnQueueFallback: config.outboxRelay.runOnQueueFallback,
      timeoutSeconds: config.outboxRelay.timeoutSeconds,
      memoryMb: config.outboxRelay.memoryMb,
      placement,
      runtime,
      ...pushing,
    });

    this.webClient?.deploy({
      apiUrl: `${this.httpApi.url}api`,
      wsUrl: this.webSocketApi.url,
      signIn: config.webClient.signIn ?? { mode: "token" },
    });

    if (config.retention !== undefined) {
      this.retention = new Retention(this, "Retention", {
        everyHours: config.retention.everyHours,
        placement,
        runtime,
        resources,
      });
    }

    // New handlers take traffic only once the schema they expect exists.
    this.schemaMigration.guard(
      ...(this.retention !== undefined ? [this.retention.function] : []),
      ...this.httpApi.functions.values(),
      ...this.webSocketApi.functions.values(),
      this.consumers.functions.persist,
      this.consumers.functions.analytics,
      this.consumers.functions.erasure,
      this.outboxRelay.function,
    );

    const fns = (m: ReadonlyMap<string, { function: lambda.IFunction }>) =>
      [...m.values()].map((f) => f.function);
    this.observability = new Observability(this, "Observability", {
      appEnv: config.name,
      alarmTargets: props.alarmTopic.targets,
      queues: {
        persist: data.queues.persist,
        analytics: data.queues.analytics,
        erasure: data.queues.erasure,
      },
      consumers: {
        persist: this.consumers.functions.persist.function,
        analytics: this.consumers.functions.analytics.function,
        erasure: this.consumers.functions.erasure.function,
      },
      outboxRelay: this.outboxRelay.function.function,
      httpApi: this.httpApi.api,
      routeFunctions: { http: fns(this.httpApi.functions), webSocket: fns(this.webSocketApi.functions) },
      // By physical name: the App stack holds no reference to the cluster, proxy or cache themselves.
      database: {
        clusterIdentifier: data.database.clusterIdentifier,
        ...(data.database.proxyName !== undefined ? { proxyName: data.database.proxyName } : {}),
      },
      cacheName: data.cache.name,
      thresholds: {
        acceptLatencyP99Ms: config.alarms.acceptLatencyP99Ms,
        persistLagP99Ms: config.alarms.persistLagP99Ms,
        consumerErrors: config.alarms.consumerErrors,
        routeFunctionErrors: config.alarms.routeFunctionErrors,
        api5xx: config.alarms.api5xx,
        queueOldestMessageSeconds: config.alarms.queueOldestMessageSeconds,
        auroraCapacityPercent: config.alarms.auroraCapacityPercent,
        proxyBorrowLatencyMs: config.alarms.proxyBorrowLatencyMs,
        period: Duration.minutes(config.alarms.periodMinutes),
        evaluationPeriods: config.alarms.evaluationPeriods,
      },
    });

    new CfnOutput(this, "HttpApiUrl", { value: this.httpApi.url, description: "HTTP API base URL" });
    new CfnOutput(this, "WebSocketUrl", { value: this.webSocketApi.url, description: "WebSocket API URL" });
    if (this.webClient !== undefined) {
      new CfnOutput(this, "WebClientUrl", {
        value: `${this.webClient.origin}/`,
        description: "The web client",
      });
    }
    new CfnOutput(this, "DashboardName", { value: this.observability.dashboard.dashboardName });
    new CfnOutput(this, "AlarmTopicArn", { value: props.alarmTopic.topic.topicArn });
    new CfnOutput(this, "PersistDlqArn", { value: data.queues.persist.deadLetterQueue.queueArn });
    new CfnOutput(this, "AnalyticsDlqArn", { value: data.queues.analytics.deadLetterQueue.queueArn });
    new CfnOutput(this, "ErasureDlqArn", { value: data.queues.erasure.deadLetterQueue.queueArn });
    const { userPool, userPoolClient } = data.identity;
    if (userPool !== undefined && userPoolClient !== undefined) {
      new CfnOutput(this, "UserPoolId", { value: userPool.userPoolId });
      new CfnOutput(this, "UserPoolClientId", { value: userPoolClient.userPoolClientId });
    }
  }
}
