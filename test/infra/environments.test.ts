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
import { crossStackValue, type Json, referencedId, resources } from "./support/template-queries.ts";

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
    expect(resources(prod.network, "AWS::EC2::Instance")).toHaveLength(0);
    // dev: one NAT instance instead of a gateway.
    expect(resources(dev.network, "AWS::EC2::NatGateway")).toHaveLength(0);
    const [[, natInstance] = ["", undefined]] = resources(dev.network, "AWS::EC2::Instance");
    expect(natInstance?.Properties).toMatchObject({ InstanceType: "t4g.nano", SourceDestCheck: false });
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
        ...(config.database.autoPauseAfterMinutes !== undefined
          ? { SecondsUntilAutoPause: config.database.autoPauseAfterMinutes * 60 }
          : {}),
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
    const base = environment("dev");
    // In sync mode every message goes through the outbox: the relay must run often.
    const rolledBack = synthesize({
      ...base,
      acceptMode: "sync",
      outboxRelay: { ...base.outboxRelay, intervalMinutes: 1 },
    });
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

  it("configures the Cognito app client explicitly: no implicit grant, no example callback, password sign-in where configured", () => {
    for (const s of [dev, prod]) {
      const client = single(s.data, "AWS::Cognito::UserPoolClient").Properties;
      const passwordAuth = s.config.auth.kind === "cognito" && s.config.auth.passwordAuth;
      expect(client.ExplicitAuthFlows.sort()).toEqual(
        [
          "ALLOW_REFRESH_TOKEN_AUTH",
          "ALLOW_USER_SRP_AUTH",
          ...(passwordAuth ? ["ALLOW_USER_PASSWORD_AUTH"] : []),
        ].sort(),
      );
      expect(client.AllowedOAuthFlowsUserPoolClient).toBe(false);
      expect(client.AllowedOAuthFlows).toBeUndefined();
      expect(client.CallbackURLs).toBeUndefined();
      expect(JSON.stringify(client)).not.toContain("example.com");
    }
    expect(prod.config.auth).toMatchObject({ kind: "cognito", passwordAuth: false });
    const withOAuth = synthesize({
      ...environment("dev"),
      auth: {
        kind: "cognito",
        passwordAuth: false,
        oauth: { callbackUrls: ["https://chat.example.org/callback"], logoutUrls: [] },
      },
    });
    const client = single(withOAuth.data, "AWS::Cognito::UserPoolClient").Properties;
    expect(client.AllowedOAuthFlows).toEqual(["code"]);
    expect(client.CallbackURLs).toEqual(["https://chat.example.org/callback"]);
  });

  it("dev reaches Aurora's writer directly and lets it pause; prod goes through RDS Proxy", () => {
    const host = (s: typeof dev) => {
      const fn = resources(s.app, "AWS::Lambda::Function").find(([id]) =>
        id.startsWith("HttpPostMessageFunction"),
      )?.[1];
      return crossStackValue(fn?.Properties?.Environment?.Variables?.DATABASE_HOST, s.data);
    };
    expect(dev.config.database.connection).toBe("direct");
    expect(resources(dev.data, "AWS::RDS::DBProxy")).toEqual([]);
    expect(host(dev)).toEqual({
      "Fn::GetAtt": [expect.stringMatching(/^DatabaseCluster/), "Endpoint.Address"],
    });
    expect(
      single(dev.data, "AWS::RDS::DBClusterParameterGroup").Properties.Parameters.idle_session_timeout,
    ).toBe("300000");
    expect(prod.config.database.connection).toBe("proxy");
    const proxy = resources(prod.data, "AWS::RDS::DBProxy")[0]?.[0];
    expect(host(prod)).toEqual({ "Fn::GetAtt": [proxy, "Endpoint"] });
    expect(
      single(prod.data, "AWS::RDS::DBClusterParameterGroup").Properties.Parameters.idle_session_timeout,
    ).toBeUndefined();
  });

  it("creates interface endpoints only where they pay off: prod (RDS Proxy reads its secret through one), not dev", () => {
    const services = (s: typeof dev) =>
      resources(s.network, "AWS::EC2::VPCEndpoint")
        .filter(([, r]) => r.Properties?.VpcEndpointType === "Interface")
        .map(([id]) => id.replace(/^NetworkVpc/, "").replace(/[0-9A-F]{8}$/, ""));
    expect(services(dev)).toEqual([]);
    expect(services(prod).sort()).toEqual(["SecretsManager", "Sqs"]);
  });
});

describe("ClickHouse reachability on the first deploy", () => {
  it("puts pre-allocated Elastic IPs on the NAT gateways, so ClickHouse can allow-list them beforehand", () => {
    const base = environment("prod");
    const ids = ["eipalloc-0a1b2c3d4e5f60001", "eipalloc-0a1b2c3d4e5f60002", "eipalloc-0a1b2c3d4e5f60003"];
    const s = synthesize({
      ...base,
      network: { ...base.network, egress: { kind: "natGateway", count: 3, eipAllocationIds: ids } },
    });
    expect(resources(s.network, "AWS::EC2::EIP")).toEqual([]);
    expect(
      resources(s.network, "AWS::EC2::NatGateway")
        .map(([, r]) => r.Properties?.AllocationId)
        .sort(),
    ).toEqual(ids);
    // Created addresses are listed as an output instead (deploy the Network stack first, then allow-list).
    expect(Object.keys(s.network.toJSON().Outputs)).not.toContain("EgressPublicIps");
    expect(Object.keys(prod.network.toJSON().Outputs)).toContain("EgressPublicIps");
  });

  it("puts a pre-allocated Elastic IP on the NAT instance, or a fixed one created with the stack", () => {
    const base = environment("dev");
    const s = synthesize({
      ...base,
      network: {
        ...base.network,
        egress: {
          kind: "natInstance",
          instanceType: "t4g.nano",
          eipAllocationId: "eipalloc-0a1b2c3d4e5f60009",
        },
      },
    });
    expect(resources(s.network, "AWS::EC2::EIP")).toEqual([]);
    expect(single(s.network, "AWS::EC2::EIPAssociation").Properties.AllocationId).toBe(
      "eipalloc-0a1b2c3d4e5f60009",
    );
    expect(single(dev.network, "AWS::EC2::EIPAssociation").Properties.AllocationId).toEqual({
      "Fn::GetAtt": [resources(dev.network, "AWS::EC2::EIP")[0]?.[0], "AllocationId"],
    });
    expect(dev.network.toJSON().Outputs.EgressPublicIps).toBeDefined();
  });

  it("reaches ClickHouse Cloud over PrivateLink when configured: an endpoint with private DNS, open to the functions only", () => {
    const base = environment("dev");
    const serviceName = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0";
    const s = synthesize({
      ...base,
      clickhouse: { ...base.clickhouse, privateLinkServiceName: serviceName },
    });
    const endpoint = resources(s.network, "AWS::EC2::VPCEndpoint").find(
      ([, r]) => r.Properties?.ServiceName === serviceName,
    );
    expect(endpoint?.[1].Properties).toMatchObject({ VpcEndpointType: "Interface", PrivateDnsEnabled: true });
    const sg = referencedId(endpoint?.[1].Properties?.SecurityGroupIds[0]);
    const ingress = resources(s.network, "AWS::EC2::SecurityGroupIngress").filter(
      ([, r]) => referencedId(r.Properties?.GroupId) === sg,
    );
    expect(
      ingress
        .map(([, r]) => [
          r.Properties?.FromPort,
          referencedId(r.Properties?.SourceSecurityGroupId)?.replace(/[0-9A-F]{8}$/, ""),
        ])
        .sort(),
    ).toEqual([
      [8443, "NetworkFunctionsSg"],
      [8443, "NetworkMigrationsSg"],
    ]);
  });
});

describe("configuration refusals", () => {
  const refusal = (config: EnvironmentConfig): string[] => [...environmentProblems(config)];
  const dev0 = environment("dev");
  const prod0 = environment("prod");

  it("refuses prod without an alarm endpoint, and synth fails with that message", () => {
    const silent: EnvironmentConfig = { ...prod0, alarms: { ...prod0.alarms, emails: [], snsTopicArns: [] } };
    expect(refusal(silent)).toEqual([
      'alarms: environment "prod" retains its data but its alarms reach no one: name at least one address in alarms.emails or one topic in alarms.snsTopicArns',
    ]);
    expect(() => createChatPipeline(new App(), silent)).toThrow(/alarms reach no one/);
    // dev may stay silent; an SNS topic alone is enough for prod.
    expect(refusal(dev0)).toEqual([]);
    expect(
      refusal({
        ...silent,
        alarms: { ...silent.alarms, snsTopicArns: ["arn:aws:sns:us-east-1:222222222222:pager"] },
      }),
    ).toEqual([]);
  });

  it("refuses bad alarm endpoints", () => {
    const problems = refusal({
      ...dev0,
      alarms: {
        ...dev0.alarms,
        emails: ["not-an-address"],
        snsTopicArns: [
          "arn:aws:sqs:us-east-1:111111111111:q",
          ...Array.from({ length: 4 }, (_, i) => `arn:aws:sns:us-east-1:111111111111:t${i}`),
        ],
      },
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('alarms.emails: "not-an-address"'),
        expect.stringContaining('alarms.snsTopicArns: "arn:aws:sqs'),
        "alarms.snsTopicArns: at most 4 topics",
      ]),
    );
  });

  it("refuses RDS Proxy with auto-pause, and RDS Proxy without a Secrets Manager endpoint", () => {
    expect(refusal({ ...dev0, database: { ...dev0.database, connection: "proxy" } })).toEqual(
      expect.arrayContaining([
        expect.stringContaining("minCapacity 0 (auto-pause) needs a direct connection"),
        expect.stringContaining(
          'database.connection "proxy" needs network.interfaceEndpoints to include "secretsmanager"',
        ),
      ]),
    );
    expect(refusal({ ...dev0, database: { ...dev0.database, autoPauseAfterMinutes: 2 } })).toEqual([
      expect.stringContaining("autoPauseAfter must be from 5 minutes to 24 hours"),
    ]);
  });

  it("refuses a slow outbox relay in rollback mode", () => {
    expect(refusal({ ...dev0, acceptMode: "sync" })).toEqual([
      expect.stringContaining('outboxRelay.intervalMinutes 1440: in acceptMode "sync"'),
    ]);
  });

  it("refuses origins that are not origins, http origins in prod, and a JWT authorizer without an audience", () => {
    expect(
      refusal({
        ...dev0,
        api: { ...dev0.api, corsAllowedOrigins: ["https://chat.example.com/", "ftp://x", "*"] },
      }),
    ).toEqual(
      expect.arrayContaining([expect.stringContaining('an allowed origin "*" must be the only one')]),
    );
    expect(
      refusal({ ...dev0, api: { ...dev0.api, corsAllowedOrigins: ["https://chat.example.com/app"] } }),
    ).toEqual([expect.stringContaining('"https://chat.example.com/app" is not an origin')]);
    expect(
      refusal({ ...prod0, api: { ...prod0.api, corsAllowedOrigins: ["http://chat.example.com"] } }),
    ).toEqual([expect.stringContaining("allows https origins only")]);
    const noAudience: EnvironmentConfig = {
      ...dev0,
      auth: {
        kind: "oidc",
        issuer: "https://login.example.com",
        jwksUrl: "https://login.example.com/jwks",
        rolesClaim: "roles",
      },
    };
    expect(refusal(noAudience)).toEqual([expect.stringContaining("api.jwtAuthorizer needs auth.audience")]);
    expect(refusal({ ...noAudience, api: { ...noAudience.api, jwtAuthorizer: false } })).toEqual([]);
  });

  it("refuses egress and OAuth settings that cannot work", () => {
    expect(
      refusal({
        ...prod0,
        network: {
          ...prod0.network,
          egress: { kind: "natGateway", count: 3, eipAllocationIds: ["eipalloc-0a1b2c3d4e5f60001"] },
        },
      }),
    ).toEqual([expect.stringContaining("egress.eipAllocationIds: one per NAT gateway (3), got 1")]);
    expect(
      refusal({
        ...dev0,
        network: { ...dev0.network, egress: { kind: "natInstance", instanceType: "t3.nano" } },
      }),
    ).toEqual([expect.stringContaining('egress.instanceType "t3.nano" must be an arm64')]);
    expect(
      refusal({
        ...dev0,
        auth: {
          kind: "cognito",
          passwordAuth: true,
          oauth: { callbackUrls: ["http://chat.example.com/cb"], logoutUrls: [] },
        },
      }),
    ).toEqual([expect.stringContaining('"http://chat.example.com/cb" must be an https URL')]);
    expect(
      refusal({ ...dev0, clickhouse: { ...dev0.clickhouse, privateLinkServiceName: "vpce-svc-123" } }),
    ).toEqual([expect.stringContaining('"vpce-svc-123" is not an endpoint service name')]);
  });
});
