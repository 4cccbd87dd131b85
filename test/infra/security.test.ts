import { describe, expect, it } from "vitest";
import { HTTP_FUNCTIONS, WEBSOCKET_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import {
  crossStackValue,
  iamStatements,
  type Json,
  referencedId,
  resources,
} from "./support/template-queries.ts";

const synthesized: Synthesized[] = [synthesize(environment("dev")), synthesize(environment("prod"))];

describe.each(synthesized)("security ($config.name)", (s) => {
  const isolatedSubnetIds = new Set(
    resources(s.network, "AWS::EC2::Subnet")
      .filter(([, r]) =>
        ((r.Properties?.Tags ?? []) as Json[]).some(
          (t) => t.Key === "aws-cdk:subnet-type" && t.Value === "Isolated",
        ),
      )
      .map(([id]) => id),
  );

  it("has isolated subnets without any route out of the VPC", () => {
    expect(isolatedSubnetIds.size).toBe(s.config.network.maxAzs);
    const isolatedTables = new Set(
      resources(s.network, "AWS::EC2::SubnetRouteTableAssociation")
        .filter(([, r]) => isolatedSubnetIds.has(referencedId(r.Properties?.SubnetId) ?? ""))
        .map(([, r]) => referencedId(r.Properties?.RouteTableId)),
    );
    expect(isolatedTables.size).toBe(isolatedSubnetIds.size);
    const routesOut = resources(s.network, "AWS::EC2::Route").filter(([, r]) =>
      isolatedTables.has(referencedId(r.Properties?.RouteTableId)),
    );
    expect(routesOut).toEqual([]);
  });

  it("places every data store in the isolated subnets", () => {
    const subnetLists: Json[][] = [
      ...resources(s.data, "AWS::RDS::DBSubnetGroup").map(([, r]) => r.Properties?.SubnetIds),
      ...resources(s.data, "AWS::RDS::DBProxy").map(([, r]) => r.Properties?.VpcSubnetIds),
      ...resources(s.data, "AWS::ElastiCache::ServerlessCache").map(([, r]) => r.Properties?.SubnetIds),
    ];
    expect(subnetLists).toHaveLength(s.config.database.connection === "proxy" ? 3 : 2);
    for (const list of subnetLists) {
      expect(list).toHaveLength(s.config.network.maxAzs);
      for (const ref of list) {
        expect(isolatedSubnetIds.has(referencedId(crossStackValue(ref, s.network)) ?? "")).toBe(true);
      }
    }
  });

  it("keeps every database instance private", () => {
    const instances = resources(s.data, "AWS::RDS::DBInstance");
    expect(instances.length).toBeGreaterThan(0);
    for (const [, r] of instances) expect(r.Properties?.PubliclyAccessible).toBe(false);
  });

  it("admits only security groups, never address ranges, to the data stores", () => {
    const ingress = [
      ...resources(s.data, "AWS::EC2::SecurityGroupIngress").map(([, r]) => r.Properties),
      ...resources(s.data, "AWS::EC2::SecurityGroup").flatMap(
        ([, r]) => r.Properties?.SecurityGroupIngress ?? [],
      ),
    ];
    expect(ingress.length).toBeGreaterThan(0);
    for (const rule of ingress) {
      expect(rule.CidrIp).toBeUndefined();
      expect(rule.CidrIpv6).toBeUndefined();
      expect(rule.SourceSecurityGroupId).toBeDefined();
    }
    // The network stack itself opens nothing to the internet either (endpoints: VPC range only;
    // the NAT instance and PrivateLink endpoints: the functions' groups only).
    for (const t of [s.network, s.app]) {
      for (const [, r] of resources(t, "AWS::EC2::SecurityGroup")) {
        for (const rule of (r.Properties?.SecurityGroupIngress ?? []) as Json[]) {
          expect(rule.CidrIp).not.toBe("0.0.0.0/0");
          expect(rule.CidrIpv6).not.toBe("::/0");
        }
      }
      for (const [, r] of resources(t, "AWS::EC2::SecurityGroupIngress")) {
        expect(r.Properties?.CidrIp).toBeUndefined();
        expect(r.Properties?.SourceSecurityGroupId).toBeDefined();
      }
    }
    expect(resources(s.app, "AWS::EC2::SecurityGroupIngress")).toEqual([]);
  });

  it("strips the rules of the VPC's default security group", () => {
    const [[, restrict] = ["", undefined]] = resources(s.network, "Custom::VpcRestrictDefaultSG");
    expect(restrict?.Properties?.DefaultSecurityGroupId).toEqual({
      "Fn::GetAtt": [resources(s.network, "AWS::EC2::VPC")[0]?.[0], "DefaultSecurityGroup"],
    });
  });

  it("admits the Lambdas to the database through the proxy, or to the cluster itself without one", () => {
    const functionsSg = resources(s.network, "AWS::EC2::SecurityGroup").find(([id]) =>
      id.includes("FunctionsSg"),
    )?.[0];
    const fromFunctions = resources(s.data, "AWS::EC2::SecurityGroupIngress").filter(
      ([, r]) =>
        referencedId(crossStackValue(r.Properties?.SourceSecurityGroupId, s.network)) === functionsSg,
    );
    const targets = fromFunctions.map(([, r]) => referencedId(r.Properties?.GroupId) ?? "");
    const proxied = s.config.database.connection === "proxy";
    expect(targets.some((id) => id.includes("DatabaseProxySg"))).toBe(proxied);
    expect(targets.some((id) => id.includes("DatabaseClusterSg"))).toBe(!proxied);
    // The NAT instance, when there is one, admits the functions and the migration step only.
    for (const [, r] of resources(s.network, "AWS::EC2::SecurityGroupIngress")) {
      expect(referencedId(r.Properties?.SourceSecurityGroupId)).toMatch(/^Network(Functions|Migrations)Sg/);
    }
  });

  it("gives the database and the cache no egress", () => {
    const sgs = resources(s.data, "AWS::EC2::SecurityGroup").filter(
      ([, r]) => !String(r.Properties?.GroupDescription).includes("Proxy"),
    );
    expect(sgs).toHaveLength(2);
    for (const [, r] of sgs) {
      expect(r.Properties?.SecurityGroupEgress).toEqual([
        expect.objectContaining({ CidrIp: "255.255.255.255/32" }),
      ]);
    }
  });

  it("encrypts the database and enforces TLS to it", () => {
    s.data.hasResourceProperties("AWS::RDS::DBCluster", { StorageEncrypted: true });
    s.data.hasResourceProperties("AWS::RDS::DBClusterParameterGroup", {
      Parameters: { "rds.force_ssl": "1" },
    });
    if (s.config.database.connection === "proxy") {
      s.data.hasResourceProperties("AWS::RDS::DBProxy", { RequireTLS: true, EngineFamily: "POSTGRESQL" });
    }
  });

  it("encrypts every queue and refuses plain-HTTP access to it", () => {
    const queues = resources(s.data, "AWS::SQS::Queue");
    expect(queues).toHaveLength(6);
    for (const [, r] of queues) expect(r.Properties?.SqsManagedSseEnabled).toBe(true);
    const policies = resources(s.data, "AWS::SQS::QueuePolicy");
    const guarded = new Set(
      policies.flatMap(([, r]) => ((r.Properties?.Queues ?? []) as Json[]).map(referencedId)),
    );
    for (const [id] of queues) expect(guarded.has(id)).toBe(true);
    for (const [, r] of policies) {
      expect(r.Properties?.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
      );
    }
  });

  it("runs Valkey on ElastiCache Serverless (TLS-only, encrypted at rest) behind RBAC password auth", () => {
    // Serverless caches have no plaintext or unencrypted mode: the engine and the user group are the knobs.
    s.data.hasResourceProperties("AWS::ElastiCache::ServerlessCache", {
      Engine: "valkey",
      UserGroupId: `chat-${s.config.name}-users`,
    });
    s.data.hasResourceProperties("AWS::ElastiCache::UserGroup", {
      Engine: "valkey",
      UserIds: [`chat-${s.config.name}-app`],
    });
    const [[, user] = ["", undefined]] = resources(s.data, "AWS::ElastiCache::User");
    expect(user?.Properties?.AuthenticationMode.Type).toBe("password");
    expect(JSON.stringify(user?.Properties?.AuthenticationMode.Passwords)).toContain(
      "{{resolve:secretsmanager:",
    );
    expect(user?.Properties?.AccessString).toBe("on ~chat:* +@all");
    expect(user?.Properties?.NoPasswordRequired).not.toBe(true);
    // ...and every function connects with TLS, in cluster mode, with the credentials secret.
    for (const [, fn] of resources(s.app, "AWS::Lambda::Function")) {
      const vars = fn.Properties?.Environment?.Variables ?? {};
      if (vars.REDIS_URL === undefined) continue;
      expect(vars.REDIS_URL["Fn::Join"][1][0]).toBe("rediss://");
      expect(vars.REDIS_CLUSTER).toBe("true");
      expect(vars.REDIS_AUTH_SECRET_ARN).toBeDefined();
    }
  });

  it("scopes ManageConnections to this WebSocket API's stage", () => {
    const [[wsApiId] = [""]] = resources(s.app, "AWS::ApiGatewayV2::Api").filter(
      ([, r]) => r.Properties?.ProtocolType === "WEBSOCKET",
    );
    const statements = iamStatements(s.all).filter((st) =>
      st.Action.includes("execute-api:ManageConnections"),
    );
    // The functions that push frames: the accept path, the WebSocket routes that answer, the
    // persist consumer and outbox relay (messages they make visible late), and the erasure worker
    // (thread.deleted).
    const pushing = [...HTTP_FUNCTIONS, ...WEBSOCKET_FUNCTIONS].filter((f) =>
      f.needs.includes("manageConnections"),
    );
    expect(pushing.length).toBeGreaterThan(0);
    expect(statements.length).toBe(pushing.length + 3);
    for (const st of statements) {
      expect(st.Effect).toBe("Allow");
      for (const resource of st.Resource) {
        expect(resource).not.toBe("*");
        const parts = resource["Fn::Join"][1] as Json[];
        expect(parts).toContainEqual({ Ref: wsApiId });
        expect(parts).toContain(`/${s.config.api.webSocketStageName}/*/@connections/*`);
      }
    }
  });

  it("grants no wildcard action on a wildcard resource", () => {
    const statements = iamStatements(s.all).filter((st) => st.Effect === "Allow");
    expect(statements.length).toBeGreaterThan(0);
    const wildcardAction = (st: (typeof statements)[number]) =>
      st.Action.some((a) => a === "*" || a.endsWith(":*"));
    const wildcardResource = (st: (typeof statements)[number]) => st.Resource.some((r) => r === "*");
    expect(
      statements.filter((st) => wildcardAction(st) && wildcardResource(st)).map((st) => st.where),
    ).toEqual([]);
    expect(statements.filter((st) => st.Action.includes("*")).map((st) => st.where)).toEqual([]);
    // Stronger: no statement of this project names every resource at all.
    expect(statements.filter(wildcardResource).map((st) => `${st.where}: ${st.Action.join(",")}`)).toEqual(
      [],
    );
  });

  it("grants each route function what its catalog entry needs, and nothing else", () => {
    const policies = resources(s.app, "AWS::IAM::Policy");
    const routes = [
      ...HTTP_FUNCTIONS.map((f) => ({ ...f, prefix: `Http${f.id}Function` })),
      ...WEBSOCKET_FUNCTIONS.map((f) => ({ ...f, prefix: `WebSocket${f.id}Function` })),
    ];
    for (const route of routes) {
      const statements = policies
        .filter(([id]) => id.startsWith(`${route.prefix}ServiceRoleDefaultPolicy`))
        .flatMap(([, p]) => p.Properties?.PolicyDocument.Statement as Json[]);
      const actions = new Set(statements.flatMap((st) => [st.Action].flat()));
      const secrets = statements
        .filter((st) => [st.Action].flat().includes("secretsmanager:GetSecretValue"))
        .flatMap((st) => [st.Resource].flat());
      const needs = new Set(route.needs);
      const what = `${route.id} (${[...needs].join(", ") || "nothing"})`;
      expect(secrets.length, what).toBe(
        ["redis", "database", "clickhouse"].filter((n) => needs.has(n as never)).length,
      );
      const sends =
        needs.has("sendToPersistQueue") ||
        needs.has("sendToAnalyticsQueue") ||
        needs.has("sendToErasureQueue");
      expect(actions.has("sqs:SendMessage"), what).toBe(sends);
      expect(actions.has("sqs:GetQueueAttributes"), what).toBe(sends || needs.has("readPersistQueue"));
      expect(actions.has("execute-api:ManageConnections"), what).toBe(needs.has("manageConnections"));
      expect(
        [...actions].filter((a) => !/^(secretsmanager|sqs|execute-api):/.test(a)),
        what,
      ).toEqual([]);
    }
    // The catch-all and the health check in particular.
    expect(HTTP_FUNCTIONS.find((f) => f.id === "NotFound")?.needs).toEqual([]);
    expect(policies.filter(([id]) => id.startsWith("HttpNotFoundFunction"))).toEqual([]);
    expect(HTTP_FUNCTIONS.find((f) => f.id === "GetHealth")?.needs).not.toContain("sendToPersistQueue");
  });

  it("grants each function only the secrets and queues it uses", () => {
    const policyOf = (fnPrefix: string): Json[] => {
      const found = resources(s.app, "AWS::IAM::Policy").find(([id]) => id.startsWith(fnPrefix));
      return found?.[1].Properties?.PolicyDocument.Statement ?? [];
    };
    const actions = (statements: Json[]) => statements.flatMap((st) => [st.Action].flat()).sort();
    // The ClickHouse consumer: ClickHouse secret + its queue, no database, no cache, no send.
    const archive = actions(policyOf("ConsumersArchiveMessagesFunctionServiceRoleDefaultPolicy"));
    expect(archive).not.toContain("sqs:SendMessage");
    expect(archive).toContain("sqs:ChangeMessageVisibility");
    expect(policyOf("ConsumersArchiveMessagesFunctionServiceRoleDefaultPolicy")).toContainEqual(
      expect.objectContaining({ Action: ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"] }),
    );
    const archiveSecrets = policyOf("ConsumersArchiveMessagesFunctionServiceRoleDefaultPolicy")
      .filter((st) => [st.Action].flat().includes("secretsmanager:GetSecretValue"))
      .flatMap((st) => [st.Resource].flat());
    expect(archiveSecrets).toHaveLength(1);
    expect(JSON.stringify(archiveSecrets)).toContain(`secret:${s.config.clickhouse.secretName}-??????`);
    // A read route: cache + database secrets, persist queue, fan-out; not ClickHouse.
    const listThreads = JSON.stringify(policyOf("HttpListThreadsFunctionServiceRoleDefaultPolicy"));
    expect(listThreads).not.toContain("clickhouse");
    // The health check also pings ClickHouse.
    expect(JSON.stringify(policyOf("HttpGetHealthFunctionServiceRoleDefaultPolicy"))).toContain("clickhouse");
    // Only the migration step reads the admin credentials.
    const migration = resources(s.app, "AWS::Lambda::Function").find(([id]) =>
      id.startsWith("SchemaMigration"),
    );
    const adminRef = JSON.stringify(
      migration?.[1].Properties?.Environment?.Variables?.DATABASE_ADMIN_SECRET_ARN,
    );
    const readers = iamStatements([s.app]).filter((st) =>
      st.Resource.some((r) => JSON.stringify(r) === adminRef),
    );
    expect(readers.map((st) => st.where.replace(/ServiceRole.*/, ""))).toEqual([
      "SchemaMigrationHandlerFunction",
    ]);
  });
});
