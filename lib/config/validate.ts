/**
 * Checks an environment's configuration before anything is built, and reports every problem at
 * once. The per-construct rules are the constructs' own validators (they also run in each
 * constructor); the rules that span sections live here.
 */
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { validateCache } from "../constructs/cache.ts";
import { validateConsumer } from "../constructs/consumers.ts";
import { validateDatabase } from "../constructs/database.ts";
import { validateIdentity } from "../constructs/identity.ts";
import { validateNetwork } from "../constructs/network.ts";
import { validateWorkQueue, visibilityTimeoutFor } from "../constructs/queues.ts";
import { validateRouteFunctionSettings } from "../constructs/websocket-api.ts";
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
  p.add(prefixed("database", validateDatabase({ ...c.database, namePrefix: namePrefix(c) })));
  p.add(prefixed("cache", validateCache({ ...c.cache, namePrefix: namePrefix(c) })));

  for (const which of ["persist", "analytics"] as const) {
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

  p.integer("retry.baseDelaySeconds", c.retry.baseDelaySeconds, 0, 43_200);
  p.integer("retry.maxDelaySeconds", c.retry.maxDelaySeconds, 0, 43_200);
  p.check(
    c.retry.maxDelaySeconds >= c.retry.baseDelaySeconds,
    "retry.maxDelaySeconds must be >= retry.baseDelaySeconds",
  );
  p.integer("outboxRelay.timeoutSeconds", c.outboxRelay.timeoutSeconds, 1, 59);
  p.integer("outboxRelay.memoryMb", c.outboxRelay.memoryMb, 128, 10_240);

  p.check(["cognito", "oidc"].includes(c.auth.kind), `auth.kind must be "cognito" or "oidc"`);
  p.add(
    prefixed(
      "auth",
      validateIdentity(c.auth.kind === "oidc" ? c.auth : { kind: "cognito", userPoolName: "x" }),
    ),
  );

  p.check(
    /^[A-Za-z0-9/_+=.@-]{1,512}$/.test(c.clickhouse.secretName),
    `clickhouse.secretName "${c.clickhouse.secretName}" is not a Secrets Manager secret name`,
  );

  const a = c.alarms;
  p.range("alarms.acceptLatencyP99Ms", a.acceptLatencyP99Ms, 1, 60_000);
  p.range("alarms.persistLagP99Ms", a.persistLagP99Ms, 1, 86_400_000);
  p.integer("alarms.consumerErrors", a.consumerErrors, 0, 1_000_000);
  p.check(
    [1, 5, 10, 15, 30, 60].includes(a.periodMinutes),
    "alarms.periodMinutes must be 1, 5, 10, 15, 30 or 60",
  );
  p.integer("alarms.evaluationPeriods", a.evaluationPeriods, 1, 100);
  for (const email of a.emails) {
    p.check(/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email), `alarms.emails: "${email}" is not an email address`);
  }

  // What "retain" promises must hold everywhere it matters.
  if (c.dataRetention === "retain") {
    p.check(c.database.deletionProtection, 'dataRetention "retain" needs database.deletionProtection');
  }
  return p.list;
};

/** Throws one ConfigurationError listing every problem of `config`. */
export const assertValidEnvironment = (config: EnvironmentConfig): void => {
  const problems = environmentProblems(config);
  if (problems.length > 0)
    throw new ConfigurationError(`configuration of environment "${config.name}"`, problems);
};
