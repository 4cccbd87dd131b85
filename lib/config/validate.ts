/**
 * Checks an environment's configuration before anything is built, and reports every problem at
 * once. The per-construct rules are the constructs' own validators (they also run in each
 * constructor); the rules that span sections live here.
 */
import { Duration } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { validateCache } from "../constructs/cache.ts";
import { validateConsumer } from "../constructs/consumers.ts";
import { validateDatabase } from "../constructs/database.ts";
import { validateIdentity } from "../constructs/identity.ts";
import { validateNetwork, validatePrivateLinkService } from "../constructs/network.ts";
import { validateWorkQueue, visibilityTimeoutFor } from "../constructs/queues.ts";
import { validateRouteFunctionSettings } from "../constructs/websocket-api.ts";
import { validateOrigins } from "../shared/cors.ts";
import { ConfigurationError, Problems } from "../shared/problems.ts";
import { namePrefix } from "../stacks/policies.ts";
import type { EnvironmentConfig } from "./types.ts";

const RETENTIONS = new Set(Object.values(RetentionDays).filter((v): v is number => typeof v === "number"));

const prefixed = (prefix: string, problems: readonly string[]): string[] =>
  problems.map((p) => `${prefix}.${p}`);

export const environmentProblems = (c: EnvironmentConfig): readonly string[] => {
  const p = new Problems();
  p.check(/^[a-z][a-z0-9]{1,11}$/.test(c.name), `name "${c.name}" must be 2–12 lowercase letters or digits`);
  p.check(/^\d{12}$/.test(c.account), `account "${c.account}" must be a 12-digit AWS account id`);
  p.check(/^[a-z]{2}(-[a-z]+)+-\d$/.test(c.region), `region "${c.region}" is not an AWS region name`);
  p.check(["destroy", "retain"].includes(c.dataRetention), `dataRetention must be "destroy" or "retain"`);
  p.check(
    ["queued", "sync"].includes(c.acceptMode),
    `acceptMode must be "queued" or "sync" (got "${c.acceptMode}")`,
  );
  p.check(
    ["DEBUG", "INFO", "WARN", "ERROR"].includes(c.logLevel),
    `logLevel "${c.logLevel}" is not a log level`,
  );
  p.check(
    RETENTIONS.has(c.logRetentionDays),
    `logRetentionDays ${c.logRetentionDays} is not a CloudWatch Logs retention (${[...RETENTIONS].join(", ")})`,
  );

  p.add(prefixed("network", validateNetwork(c.network)));
  // Readers need two AZs: validateNetwork already requires maxAzs ≥ 2, the Database construct checks its VPC.
  p.check(
    ["proxy", "direct"].includes(c.database.connection),
    `database.connection must be "proxy" or "direct" (got "${c.database.connection}")`,
  );
  p.add(
    prefixed(
      "database",
      validateDatabase({
        ...c.database,
        proxy: c.database.connection === "proxy",
        ...(c.database.autoPauseAfterMinutes !== undefined
          ? { autoPauseAfter: Duration.minutes(c.database.autoPauseAfterMinutes) }
          : {}),
        namePrefix: namePrefix(c),
      }),
    ),
  );
  // RDS Proxy runs in the isolated subnets: it reads its secret through the Secrets Manager endpoint.
  if (c.database.connection === "proxy") {
    p.check(
      c.network.interfaceEndpoints.includes("secretsmanager"),
      'database.connection "proxy" needs network.interfaceEndpoints to include "secretsmanager" (RDS Proxy reads its secret through it)',
    );
  }
  p.add(prefixed("cache", validateCache({ ...c.cache, namePrefix: namePrefix(c) })));

  for (const which of ["persist", "analytics", "erasure"] as const) {
    const consumer = c.queues[which];
    p.add(prefixed(`queues.${which}`, validateConsumer(consumer, visibilityTimeoutFor(consumer))));
    p.add(
      prefixed(
        `queues.${which}`,
        validateWorkQueue({
          consumer,
          maxReceiveCount: consumer.maxReceiveCount,
          retentionDays: c.queues.retentionDays,
        }),
      ),
    );
  }

  p.add(prefixed("api", validateRouteFunctionSettings(c.api)));
  p.check(
    c.api.throttleRatePerSecond > 0 && c.api.throttleBurst >= 1,
    "api.throttleRatePerSecond and api.throttleBurst must be positive",
  );
  p.check(
    /^[A-Za-z0-9_-]{1,128}$/.test(c.api.webSocketStageName),
    `api.webSocketStageName "${c.api.webSocketStageName}" is not a valid stage name`,
  );
  p.add(prefixed("api.corsAllowedOrigins", validateOrigins(c.api.corsAllowedOrigins)));
  p.integer("api.corsMaxAgeSeconds", c.api.corsMaxAgeSeconds, 0, 86_400);
  if (c.dataRetention === "retain") {
    p.check(
      c.api.corsAllowedOrigins.every((o) => o.startsWith("https://")),
      `api.corsAllowedOrigins: an environment that retains its data allows https origins only (got ${c.api.corsAllowedOrigins.join(", ")})`,
    );
  }
  if (c.api.jwtAuthorizer && c.auth.kind === "oidc") {
    p.check(
      c.auth.audience !== undefined,
      "api.jwtAuthorizer needs auth.audience: API Gateway's JWT authorizer checks aud (or client_id) against it",
    );
  }

  p.integer("retry.baseDelaySeconds", c.retry.baseDelaySeconds, 0, 43_200);
  p.integer("retry.maxDelaySeconds", c.retry.maxDelaySeconds, 0, 43_200);
  p.check(
    c.retry.maxDelaySeconds >= c.retry.baseDelaySeconds,
    "retry.maxDelaySeconds must be >= retry.baseDelaySeconds",
  );
  p.integer("persistBoundSeconds", c.persistBoundSeconds, 60, 86_400);
  p.check(
    c.persistBoundSeconds >= 2 * c.retry.maxDelaySeconds,
    "persistBoundSeconds must be >= 2 × retry.maxDelaySeconds: a record that fails twice must still be persisted within the bound",
  );
  const relay = c.outboxRelay;
  p.integer("outboxRelay.intervalMinutes", relay.intervalMinutes, 1, 1_440);
  p.integer(
    "outboxRelay.timeoutSeconds",
    relay.timeoutSeconds,
    1,
    Math.min(900, relay.intervalMinutes * 60 - 1),
  );
  p.integer("outboxRelay.memoryMb", relay.memoryMb, 128, 10_240);
  if (c.retention !== undefined) {
    p.integer("retention.messageRetentionDays", c.retention.messageRetentionDays, 1, 36_500);
    p.integer("retention.everyHours", c.retention.everyHours, 1, 24);
  }
  if (c.acceptMode === "sync") {
    p.check(
      relay.intervalMinutes <= 5,
      `outboxRelay.intervalMinutes ${relay.intervalMinutes}: in acceptMode "sync" every message goes through the outbox; run the relay at least every 5 minutes`,
    );
  }

  p.check(["cognito", "oidc"].includes(c.auth.kind), `auth.kind must be "cognito" or "oidc"`);
  p.add(
    prefixed("auth", validateIdentity(c.auth.kind === "oidc" ? c.auth : { ...c.auth, userPoolName: "x" })),
  );

  p.check(
    /^[A-Za-z0-9/_+=.@-]{1,512}$/.test(c.clickhouse.secretName),
    `clickhouse.secretName "${c.clickhouse.secretName}" is not a Secrets Manager secret name`,
  );
  if (c.clickhouse.privateLinkServiceName !== undefined) {
    const service = {
      serviceName: c.clickhouse.privateLinkServiceName,
      port: c.clickhouse.privateLinkPort ?? 8443,
    };
    p.add(prefixed("clickhouse.privateLink", validatePrivateLinkService(service)));
  }

  const a = c.alarms;
  p.range("alarms.acceptLatencyP99Ms", a.acceptLatencyP99Ms, 1, 60_000);
  p.range("alarms.persistLagP99Ms", a.persistLagP99Ms, 1, 86_400_000);
  p.integer("alarms.consumerErrors", a.consumerErrors, 0, 1_000_000);
  p.integer("alarms.routeFunctionErrors", a.routeFunctionErrors, 0, 1_000_000);
  p.integer("alarms.api5xx", a.api5xx, 0, 1_000_000);
  p.integer("alarms.queueOldestMessageSeconds", a.queueOldestMessageSeconds, 60, 1_209_600);
  p.range("alarms.auroraCapacityPercent", a.auroraCapacityPercent, 1, 100);
  p.range("alarms.proxyBorrowLatencyMs", a.proxyBorrowLatencyMs, 1, 60_000);
  p.check(
    [1, 5, 10, 15, 30, 60].includes(a.periodMinutes),
    "alarms.periodMinutes must be 1, 5, 10, 15, 30 or 60",
  );
  p.integer("alarms.evaluationPeriods", a.evaluationPeriods, 1, 100);
  for (const email of a.emails) {
    p.check(/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email), `alarms.emails: "${email}" is not an email address`);
  }
  for (const arn of a.snsTopicArns) {
    p.check(
      /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/.test(arn),
      `alarms.snsTopicArns: "${arn}" is not an SNS topic ARN`,
    );
  }
  // An alarm action list holds 5 actions: the environment's own topic and up to 4 more.
  p.check(a.snsTopicArns.length <= 4, "alarms.snsTopicArns: at most 4 topics");

  // What "retain" promises must hold everywhere it matters.
  if (c.dataRetention === "retain") {
    p.check(c.database.deletionProtection, 'dataRetention "retain" needs database.deletionProtection');
    p.check(
      a.emails.length + a.snsTopicArns.length > 0,
      `alarms: environment "${c.name}" retains its data but its alarms reach no one: name at least one address in alarms.emails or one topic in alarms.snsTopicArns`,
    );
  }
  return p.list;
};

/** Throws one ConfigurationError listing every problem of `config`. */
export const assertValidEnvironment = (config: EnvironmentConfig): void => {
  const problems = environmentProblems(config);
  if (problems.length > 0)
    throw new ConfigurationError(`configuration of environment "${config.name}"`, problems);
};
