import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { createChatPipeline } from "../../lib/chat-pipeline.ts";
import { ENVIRONMENTS, selectEnvironment, UnknownEnvironmentError } from "../../lib/config/environments.ts";
import type { EnvironmentConfig } from "../../lib/config/types.ts";
import { environmentProblems } from "../../lib/config/validate.ts";
import { ConfigurationError } from "../../lib/shared/problems.ts";
import { environment, synthesize } from "./support/synth.ts";
import { type Json, resources } from "./support/template-queries.ts";

const dev = synthesize(environment("dev"));
const prod = synthesize(environment("prod"));

const single = (t: typeof dev.data, type: string): Json => {
  const found = resources(t, type);
  expect(found).toHaveLength(1);
  return found[0]?.[1];
};

describe("environment selection", () => {
  it("knows dev and prod, and every one of them is valid", () => {
    expect(Object.keys(ENVIRONMENTS).sort()).toEqual(["dev", "prod"]);
    for (const config of Object.values(ENVIRONMENTS)) expect(environmentProblems(config)).toEqual([]);
  });

  it("refuses an unknown environment, naming the known ones", () => {
    expect(() => selectEnvironment("staging")).toThrow(UnknownEnvironmentError);
    expect(() => selectEnvironment("staging")).toThrow(
      /Unknown environment "staging". Known environments: dev, prod/,
    );
    expect(() => selectEnvironment(undefined)).toThrow(
      /No environment selected. Known environments: dev, prod/,
    );
  });

  it("fails `cdk synth -c env=<unknown>` with that message", () => {
    const outdir = mkdtempSync(join(tmpdir(), "cdk-unknown-env-"));
    try {
      const run = spawnSync(process.execPath, ["--import", "tsx", "bin/app.ts"], {
        cwd: join(import.meta.dirname, "..", ".."),
        env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ env: "staging" }), CDK_OUTDIR: outdir },
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(run.status).not.toBe(0);
      expect(run.stderr).toContain('Unknown environment "staging". Known environments: dev, prod.');
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });

  it("reports every problem of a bad configuration in one error, before building anything", () => {
    const base = environment("dev");
    const bad: EnvironmentConfig = {
      ...base,
      logRetentionDays: 8,
      network: { ...base.network, maxAzs: 1 },
      queues: {
        ...base.queues,
        persist: { ...base.queues.persist, maxConcurrency: 1, batchSize: 100, maxBatchingWindowSeconds: 0 },
      },
      api: { ...base.api, timeoutSeconds: 40 },
      retry: { baseDelaySeconds: 60, maxDelaySeconds: 10 },
    };
    const app = new App();
    let error: unknown;
    try {
      createChatPipeline(app, bad);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    const { problems, message } = error as ConfigurationError;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining("logRetentionDays 8"),
        expect.stringContaining("network.maxAzs"),
        expect.stringContaining("queues.persist.maxConcurrency"),
        expect.stringContaining("queues.persist.a batchSize above 10 needs maxBatchingWindowSeconds"),
        expect.stringContaining("api.timeoutSeconds"),
        expect.stringContaining("retry.maxDelaySeconds"),
      ]),
    );
    expect(message).toContain(`${problems.length} problems`);
    expect(app.node.children).toHaveLength(0);
  });
});

describe("dev and prod differ where their configuration says", () => {
  it("prod retains its data when a stack is deleted; dev deletes it", () => {
    for (const type of [
      "AWS::RDS::DBCluster",
      "AWS::ElastiCache::ServerlessCache",
      "AWS::Cognito::UserPool",
      "AWS::SQS::Queue",
      "AWS::SecretsManager::Secret",
    ]) {
      for (const [, r] of resources(prod.data, type)) expect(r.DeletionPolicy, `prod ${type}`).toBe("Retain");
      for (const [, r] of resources(dev.data, type)) expect(r.DeletionPolicy, `dev ${type}`).toBe("Delete");
    }
    for (const [, r] of resources(prod.app, "AWS::Logs::LogGroup")) expect(r.DeletionPolicy).toBe("Retain");
    for (const [, r] of resources(dev.app, "AWS::Logs::LogGroup")) expect(r.DeletionPolicy).toBe("Delete");
  });

  it("prod protects its data from deletion; dev does not", () => {
    expect(single(prod.data, "AWS::RDS::DBCluster").Properties.DeletionProtection).toBe(true);
    expect(single(dev.data, "AWS::RDS::DBCluster").Properties.DeletionProtection).toBe(false);
    expect(single(prod.data, "AWS::Cognito::UserPool").Properties.DeletionProtection).toBe("ACTIVE");
    expect(single(dev.data, "AWS::Cognito::UserPool").Properties.DeletionProtection).toBe("INACTIVE");
    expect(prod.pipeline.data.terminationProtection).toBe(true);
    expect(dev.pipeline.data.terminationProtection).toBe(false);
  });

  it("prod runs multi-AZ: a reader in another AZ, a NAT gateway per AZ, three AZs", () => {
    const azs = (s: typeof dev) =>
      resources(s.data, "AWS::RDS::DBInstance").map(([, r]) => r.Properties?.AvailabilityZone);
    expect(azs(prod)).toHaveLength(2);
    expect(new Set(azs(prod)).size).toBe(2);
    expect(azs(dev)).toHaveLength(1);
    expect(resources(prod.network, "AWS::EC2::NatGateway")).toHaveLength(3);
    expect(resources(dev.network, "AWS::EC2::NatGateway")).toHaveLength(1);
    const isolated = (s: typeof dev) =>
      resources(s.network, "AWS::EC2::Subnet").filter(([id]) => id.includes("data")).length;
    expect(isolated(prod)).toBe(3);
    expect(isolated(dev)).toBe(2);
  });

  it("sizes, backups, retention and consumer concurrency follow the configuration", () => {
    for (const s of [dev, prod]) {
      const { config } = s;
      const cluster = single(s.data, "AWS::RDS::DBCluster").Properties;
      expect(cluster.ServerlessV2ScalingConfiguration).toEqual({
        MinCapacity: config.database.minCapacity,
        MaxCapacity: config.database.maxCapacity,
      });
      expect(cluster.BackupRetentionPeriod).toBe(config.database.backupRetentionDays);
      const cache = single(s.data, "AWS::ElastiCache::ServerlessCache").Properties;
      expect(cache.CacheUsageLimits).toEqual({
        DataStorage: { Maximum: config.cache.maxDataStorageGb, Unit: "GB" },
        ECPUPerSecond: { Maximum: config.cache.maxEcpuPerSecond },
      });
      expect(cache.SnapshotRetentionLimit ?? 0).toBe(config.cache.snapshotRetentionDays);
      for (const [, g] of resources(s.app, "AWS::Logs::LogGroup")) {
        expect(g.Properties?.RetentionInDays).toBe(config.logRetentionDays);
      }
      const persistQueue = resources(s.data, "AWS::SQS::Queue").find(([id]) =>
        id.startsWith("QueuesPersistQueue"),
      );
      expect(persistQueue?.[1].Properties?.MessageRetentionPeriod).toBe(config.queues.retentionDays * 86_400);
      expect(persistQueue?.[1].Properties?.RedrivePolicy.maxReceiveCount).toBe(
        config.queues.persist.maxReceiveCount,
      );
    }
    expect(prod.config.database.maxCapacity).toBeGreaterThan(dev.config.database.maxCapacity);
    expect(prod.config.logRetentionDays).toBeGreaterThan(dev.config.logRetentionDays);
    expect(resources(prod.network, "AWS::EC2::FlowLog")).toHaveLength(1);
    expect(resources(dev.network, "AWS::EC2::FlowLog")).toHaveLength(0);
  });

  it("sets the accept mode (the rollback flag) from the configuration", () => {
    const rolledBack = synthesize({ ...environment("dev"), acceptMode: "sync" });
    const modes = (s: typeof dev) =>
      new Set(
        resources(s.app, "AWS::Lambda::Function")
          .map(([, r]) => r.Properties?.Environment?.Variables?.ACCEPT_MODE)
          .filter((v) => v !== undefined),
      );
    expect(modes(dev)).toEqual(new Set(["queued"]));
    expect(modes(rolledBack)).toEqual(new Set(["sync"]));
  });

  it("takes the JWT settings from an external OIDC provider when configured, creating no user pool", () => {
    const external = synthesize({
      ...environment("dev"),
      auth: {
        kind: "oidc",
        issuer: "https://login.example.com/",
        jwksUrl: "https://login.example.com/.well-known/jwks.json",
        audience: "chat-api",
        rolesClaim: "roles",
      },
    });
    expect(resources(external.data, "AWS::Cognito::UserPool")).toHaveLength(0);
    external.app.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: {
          JWT_ISSUER: "https://login.example.com/",
          JWT_JWKS_URL: "https://login.example.com/.well-known/jwks.json",
          JWT_AUDIENCE: "chat-api",
          JWT_ROLES_CLAIM: "roles",
        },
      },
    });
  });

  it("creates a Cognito user pool with the admin and service groups by default", () => {
    for (const s of [dev, prod]) {
      const groups = resources(s.data, "AWS::Cognito::UserPoolGroup").map(([, g]) => g.Properties?.GroupName);
      expect(groups.sort()).toEqual(["admin", "service"]);
      s.data.hasResourceProperties("AWS::Cognito::UserPoolClient", { GenerateSecret: false });
    }
  });
});
