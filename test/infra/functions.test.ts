import { Stack } from "aws-cdk-lib";
import type { CfnFunction } from "aws-cdk-lib/aws-lambda";
import { describe, expect, it } from "vitest";
import {
  CONSUMER_FUNCTIONS,
  HTTP_FUNCTIONS,
  SCHEDULED_FUNCTIONS,
  WEBSOCKET_FUNCTIONS,
} from "../../lambdas/handlers/catalog.ts";
import { parseConfig } from "../../lambdas/runtime/config.ts";
import { METRICS_NAMESPACE } from "../../lambdas/runtime/metric-names.ts";
import type { ChatFunction } from "../../lib/constructs/chat-function.ts";
import { routeKeysOf } from "../../lib/constructs/http-api.ts";
import { migrationsFingerprint } from "../../lib/constructs/schema-migration.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import { dependsOn, flatten, type Json, referencedId, resources } from "./support/template-queries.ts";

const withRetention = synthesize({
  ...environment("dev"),
  retention: { messageRetentionDays: 90, everyHours: 6 },
});
const synthesized: Synthesized[] = [
  synthesize(environment("dev")),
  synthesize(environment("prod")),
  withRetention,
];

const logicalId = (fn: ChatFunction): string =>
  Stack.of(fn).getLogicalId(fn.function.node.defaultChild as CfnFunction);

describe.each(synthesized)("functions and APIs ($config.name)", (s) => {
  const app = s.pipeline.app;
  const functions = new Map(resources(s.app, "AWS::Lambda::Function"));
  const routes = resources(s.app, "AWS::ApiGatewayV2::Route");
  const integrations = new Map(resources(s.app, "AWS::ApiGatewayV2::Integration"));
  const apiOf = (protocol: string) =>
    resources(s.app, "AWS::ApiGatewayV2::Api").find(([, r]) => r.Properties?.ProtocolType === protocol)?.[0];

  /** The function a route's integration invokes. */
  const routeTarget = (route: Json): string | undefined => {
    const target = route.Properties.Target["Fn::Join"][1] as Json[];
    const uri = integrations.get(referencedId(target[1]) ?? "")?.Properties?.IntegrationUri;
    // HTTP APIs take the function ARN, WebSocket APIs the apigateway:lambda:path invocation URI.
    return referencedId(uri) ?? referencedId((uri?.["Fn::Join"]?.[1] as Json[] | undefined)?.[1]);
  };

  it("runs every function of the project on Node 22, arm64, from one ESM handler", () => {
    // CDK's own deploy-time provider (it strips the default security group's rules) is not ours.
    const all = s.all
      .flatMap((t) => resources(t, "AWS::Lambda::Function"))
      .filter(([id]) => !id.startsWith("CustomVpcRestrictDefaultSG"));
    const catalogued =
      HTTP_FUNCTIONS.length +
      WEBSOCKET_FUNCTIONS.length +
      Object.keys(CONSUMER_FUNCTIONS).length +
      Object.keys(SCHEDULED_FUNCTIONS).length -
      // Retention is deployed only where the environment sets a retention period.
      (s.config.retention === undefined ? 1 : 0);
    expect(all).toHaveLength(catalogued + 1); // + the schema-migration step
    for (const [, fn] of all) {
      expect(fn.Properties?.Runtime).toBe("nodejs22.x");
      expect(fn.Properties?.Architectures).toEqual(["arm64"]);
      expect(fn.Properties?.Handler).toBe("index.handler");
      expect(fn.Properties?.VpcConfig?.SubnetIds?.length).toBe(s.config.network.maxAzs);
      expect(fn.Properties?.LoggingConfig?.LogGroup).toBeDefined();
    }
  });

  it("serves every HTTP route of the catalog with its own function", () => {
    const httpApi = apiOf("HTTP");
    const httpRoutes = routes.filter(([, r]) => referencedId(r.Properties?.ApiId) === httpApi);
    const keysOf = (routeKey: string) => routeKeysOf(routeKey).map((k) => k.key);
    expect(httpRoutes.map(([, r]) => r.Properties?.RouteKey).sort()).toEqual(
      HTTP_FUNCTIONS.flatMap((f) => keysOf(f.routeKey)).sort(),
    );
    for (const spec of HTTP_FUNCTIONS) {
      const fn = app.httpApi.functions.get(spec.id);
      expect(fn).toBeDefined();
      for (const key of keysOf(spec.routeKey)) {
        const route = httpRoutes.find(([, r]) => r.Properties?.RouteKey === key)?.[1];
        expect(routeTarget(route), key).toBe(logicalId(fn as ChatFunction));
      }
    }
    s.app.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "$default",
      AutoDeploy: true,
      DefaultRouteSettings: {
        ThrottlingRateLimit: s.config.api.throttleRatePerSecond,
        ThrottlingBurstLimit: s.config.api.throttleBurst,
      },
    });
  });

  it("serves every WebSocket route of the catalog on a stage", () => {
    const wsApi = apiOf("WEBSOCKET");
    s.app.hasResourceProperties("AWS::ApiGatewayV2::Api", {
      ProtocolType: "WEBSOCKET",
      RouteSelectionExpression: "$request.body.action",
    });
    const wsRoutes = routes.filter(([, r]) => referencedId(r.Properties?.ApiId) === wsApi);
    expect(wsRoutes.map(([, r]) => r.Properties?.RouteKey).sort()).toEqual(
      WEBSOCKET_FUNCTIONS.map((f) => f.routeKey).sort(),
    );
    for (const spec of WEBSOCKET_FUNCTIONS) {
      const route = wsRoutes.find(([, r]) => r.Properties?.RouteKey === spec.routeKey)?.[1];
      expect(routeTarget(route)).toBe(logicalId(app.webSocketApi.functions.get(spec.id) as ChatFunction));
    }
    s.app.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      ApiId: { Ref: wsApi },
      StageName: s.config.api.webSocketStageName,
      AutoDeploy: true,
    });
  });

  it("outputs the HTTP and WebSocket URLs", () => {
    const outputs = s.app.toJSON().Outputs as Record<string, Json>;
    expect(outputs.HttpApiUrl).toBeDefined();
    expect(JSON.stringify(outputs.WebSocketUrl.Value)).toContain("wss://");
    expect(JSON.stringify(outputs.WebSocketUrl.Value)).toContain(`/${s.config.api.webSocketStageName}`);
  });

  it("gives every pipeline function an environment its runtime configuration accepts", () => {
    const migration = logicalId(app.schemaMigration.function);
    for (const [id, fn] of functions) {
      if (id === migration) continue;
      const vars = fn.Properties?.Environment?.Variables as Record<string, Json>;
      const env = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, flatten(v)]));
      // Tokens become "TOKEN": URLs must be real, so put a plausible one where the value is a token.
      for (const k of ["JWT_JWKS_URL", "REDIS_URL", "WEBSOCKET_API_ENDPOINT"]) {
        if (env[k] === "TOKEN") env[k] = "https://example.test/x";
      }
      const parsed = parseConfig(env);
      expect(parsed.APP_ENV).toBe(s.config.name);
      expect(parsed.ACCEPT_MODE).toBe(s.config.acceptMode);
      expect(parsed.DATABASE_SSL).toBe(true);
      expect(parsed.REDIS_CLUSTER).toBe(true);
      expect(vars.NODE_EXTRA_CA_CERTS).toBe("/var/runtime/ca-cert.pem");
      expect(vars.POWERTOOLS_SERVICE_NAME).toBe("chat-pipeline");
      expect(vars.POWERTOOLS_METRICS_NAMESPACE).toBe(METRICS_NAMESPACE);
      expect(vars.JWT_ISSUER).toBeDefined();
      expect(vars.JWT_AUDIENCE).toBeDefined();
      expect(vars.JWT_ROLES_CLAIM).toBe("cognito:groups");
    }
  });

  it("tells the HTTP and WebSocket functions where to fan out", () => {
    for (const fn of [...app.httpApi.functions.values(), ...app.webSocketApi.functions.values()]) {
      const vars = functions.get(logicalId(fn))?.Properties?.Environment?.Variables;
      const parts = vars.WEBSOCKET_API_ENDPOINT["Fn::Join"][1] as Json[];
      expect(parts[0]).toBe("https://");
      expect(parts).toContainEqual({ Ref: apiOf("WEBSOCKET") });
      expect(parts).toContain(`.execute-api.${s.config.region}.`);
      expect(parts.at(-1)).toContain(`/${s.config.api.webSocketStageName}`);
    }
  });

  it("runs the schema migrations before any handler takes traffic", () => {
    const [[migrationId, migration] = ["", undefined]] = resources(s.app, "Custom::SchemaMigration");
    expect(migration?.Properties?.MigrationsHash).toBe(
      migrationsFingerprint({ databaseName: s.config.database.databaseName }),
    );
    expect(referencedId(migration?.Properties?.ServiceToken)).toBe(logicalId(app.schemaMigration.function));
    const gated = [
      ...app.httpApi.functions.values(),
      ...app.webSocketApi.functions.values(),
      app.consumers.functions.persist,
      app.consumers.functions.analytics,
      app.consumers.functions.erasure,
      app.outboxRelay.function,
      ...(app.retention !== undefined ? [app.retention.function] : []),
    ].map(logicalId);
    expect(gated).toHaveLength(functions.size - 1);
    for (const id of gated) expect(dependsOn(functions.get(id) ?? { Type: "" })).toContain(migrationId);
    for (const [, m] of resources(s.app, "AWS::Lambda::EventSourceMapping"))
      expect(dependsOn(m)).toContain(migrationId);
  });

  it("connects the migration step to the cluster directly, with only the secrets it needs", () => {
    const fn = functions.get(logicalId(app.schemaMigration.function));
    const vars = fn?.Properties?.Environment?.Variables;
    expect(Object.keys(vars).sort()).toEqual(
      [
        "APP_ENV",
        "CLICKHOUSE_SECRET_ARN",
        "DATABASE_ADMIN_SECRET_ARN",
        "DATABASE_APP_SECRET_ARN",
        "DATABASE_HOST",
        "DATABASE_NAME",
        "DATABASE_PORT",
        "NODE_EXTRA_CA_CERTS",
        "NODE_OPTIONS",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_SERVICE_NAME",
      ].sort(),
    );
    expect(JSON.stringify(vars.DATABASE_HOST)).toContain("DatabaseCluster");
    expect(JSON.stringify(vars.DATABASE_HOST)).not.toContain("Proxy");
    expect(vars.CLICKHOUSE_SECRET_ARN).toBe(s.config.clickhouse.secretName);
    const sg = JSON.stringify(fn?.Properties?.VpcConfig?.SecurityGroupIds);
    expect(sg).toContain("MigrationsSg");
  });
});

describe("schema migration run id", () => {
  it("forces a run when given", () => {
    const s = synthesize(environment("dev"), { schemaMigrationRunId: "2026-01-01T00:00:00Z" });
    s.app.hasResourceProperties("Custom::SchemaMigration", { RunId: "2026-01-01T00:00:00Z" });
  });
});

describe("retention, where the environment sets it", () => {
  const functions = resources(withRetention.app, "AWS::Lambda::Function");
  const retention = functions.find(([id]) => id.includes(SCHEDULED_FUNCTIONS.retention.id));

  it("runs the retention function on its schedule with MESSAGE_RETENTION_DAYS, and nowhere else", () => {
    expect(retention).toBeDefined();
    const [id, fn] = retention as [string, Json];
    expect(fn.Properties.Environment.Variables.MESSAGE_RETENTION_DAYS).toBe("90");
    const rules = resources(withRetention.app, "AWS::Events::Rule").filter(([, r]) =>
      (r.Properties.Targets as Json[]).some((target) => referencedId(target.Arn) === id),
    );
    expect(rules.map(([, r]) => r.Properties.ScheduleExpression)).toEqual(["rate(6 hours)"]);
    for (const s of synthesized.slice(0, 2)) {
      expect(resources(s.app, "AWS::Lambda::Function").some(([fid]) => fid.includes("ApplyRetention"))).toBe(
        false,
      );
    }
  });

  it("tells every function how long an erasure waits for writers in flight: the longest timeout and a margin", () => {
    const c = withRetention.config;
    const longest = Math.max(
      c.api.timeoutSeconds,
      c.queues.persist.timeoutSeconds,
      c.queues.analytics.timeoutSeconds,
      c.outboxRelay.timeoutSeconds,
    );
    for (const [, fn] of functions.filter(([fid]) => !fid.startsWith("CustomVpcRestrictDefaultSG"))) {
      const settle = fn.Properties.Environment?.Variables?.ERASURE_SETTLE_SECONDS;
      if (settle === undefined) continue; // the schema-migration step
      expect(Number(settle)).toBeGreaterThan(longest);
    }
  });
});
