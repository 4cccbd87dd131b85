/**
 * PostgreSQL: Aurora PostgreSQL Serverless v2 in the isolated subnets, encrypted, TLS enforced,
 * reached by the functions through RDS Proxy or, without a proxy, at the writer endpoint directly.
 * Two sets of credentials, both generated into Secrets Manager:
 *  - the admin (master) user, used only by the schema-migration step, which connects to the
 *    cluster directly;
 *  - the application user (`chat_app`: DML on the application's tables, no DDL), created and
 *    granted by the migration step; the only user the proxy knows, so the only one the Lambdas get.
 *
 * A minimum capacity of 0 lets Aurora pause when nobody is connected (no proxy then: RDS Proxy
 * keeps connections open). Idle sessions are closed by the server after `idleSessionTimeout`, so
 * a frozen Lambda's pooled connection does not keep the cluster awake.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as rds from "aws-cdk-lib/aws-rds";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

export interface DatabaseProps {
  readonly vpc: ec2.IVpc;
  /** Subnets of the cluster and the proxy (isolated ones). */
  readonly subnets: ec2.SubnetSelection;
  /** The Lambdas: clients of RDS Proxy, or of the cluster itself when there is no proxy. */
  readonly proxyClients: readonly ec2.ISecurityGroup[];
  /** Put RDS Proxy between the Lambdas and the cluster. @default true */
  readonly proxy?: boolean;
  /** With minCapacity 0: how long without connections before Aurora pauses (5 min–24 h). @default 10 minutes */
  readonly autoPauseAfter?: Duration;
  /** Server-side `idle_session_timeout`. @default 5 minutes when Aurora may pause, otherwise none */
  readonly idleSessionTimeout?: Duration;
  /** Clients allowed to reach the cluster directly (the schema-migration step). */
  readonly directClients: readonly ec2.ISecurityGroup[];
  /** Prefix of physical names (cluster and proxy identifiers), e.g. "chat-dev". */
  readonly namePrefix: string;
  /** Aurora PostgreSQL "major.minor". @default "17.7" */
  readonly engineVersion?: string;
  /** @default 0.5 */
  readonly minCapacity?: number;
  /** @default 4 */
  readonly maxCapacity?: number;
  /** Readers in other AZs than the writer (0 = single-AZ). @default 0 */
  readonly readers?: number;
  /** @default 7 */
  readonly backupRetentionDays?: number;
  /** @default false */
  readonly deletionProtection?: boolean;
  /** @default RemovalPolicy.DESTROY */
  readonly removalPolicy?: RemovalPolicy;
  /** @default "chat" */
  readonly databaseName?: string;
  /** Login of the application user. @default "chat_app" */
  readonly appUsername?: string;
}

export const POSTGRES_PORT = 5432;

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

type DatabaseSettings = Pick<
  DatabaseProps,
  | "engineVersion"
  | "minCapacity"
  | "maxCapacity"
  | "readers"
  | "backupRetentionDays"
  | "databaseName"
  | "appUsername"
  | "namePrefix"
  | "proxy"
  | "autoPauseAfter"
>;

export const validateDatabase = (props: DatabaseSettings): readonly string[] => {
  const engineVersion = props.engineVersion ?? "17.7";
  const minCapacity = props.minCapacity ?? 0.5;
  const databaseName = props.databaseName ?? "chat";
  const appUsername = props.appUsername ?? "chat_app";
  return new Problems()
    .check(/^\d+\.\d+$/.test(engineVersion), `engineVersion must be "major.minor" (got "${engineVersion}")`)
    .check(minCapacity * 2 === Math.round(minCapacity * 2), "minCapacity must be a multiple of 0.5")
    .range("minCapacity", minCapacity, 0, 256)
    .range("maxCapacity", props.maxCapacity ?? 4, Math.max(1, minCapacity), 256)
    .integer("readers", props.readers ?? 0, 0, 15)
    .integer("backupRetentionDays", props.backupRetentionDays ?? 7, 1, 35)
    .check(IDENTIFIER.test(databaseName), `databaseName "${databaseName}" is not a plain identifier`)
    .check(IDENTIFIER.test(appUsername), `appUsername "${appUsername}" is not a plain identifier`)
    .check(
      /^[a-z][a-z0-9-]{0,50}$/.test(props.namePrefix),
      `namePrefix "${props.namePrefix}" is not a valid identifier`,
    )
    .check(
      minCapacity > 0 || props.proxy === false,
      "minCapacity 0 (auto-pause) needs a direct connection: RDS Proxy keeps Aurora from pausing",
    )
    .check(
      props.autoPauseAfter === undefined ||
        (minCapacity === 0 &&
          props.autoPauseAfter.toSeconds() >= 300 &&
          props.autoPauseAfter.toSeconds() <= 86_400),
      "autoPauseAfter must be from 5 minutes to 24 hours, and only with minCapacity 0",
    ).list;
};

export class Database extends Construct {
  readonly cluster: rds.DatabaseCluster;
  /** Set when the Lambdas go through RDS Proxy. */
  readonly proxy?: rds.DatabaseProxy;
  /** Master credentials {username, password, host, port, ...}: schema migrations only. */
  readonly adminSecret: secretsmanager.ISecret;
  /** Application credentials {username, password}: registered with the proxy. */
  readonly appSecret: secretsmanager.ISecret;
  readonly databaseName: string;
  readonly appUsername: string;
  /** Physical names (for alarms in other stacks, without a cross-stack reference). */
  readonly clusterIdentifier: string;
  readonly proxyName?: string;
  readonly securityGroup: ec2.SecurityGroup;
  readonly proxySecurityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const engineVersion = props.engineVersion ?? "17.7";
    const minCapacity = props.minCapacity ?? 0.5;
    const maxCapacity = props.maxCapacity ?? 4;
    const readers = props.readers ?? 0;
    const backupRetentionDays = props.backupRetentionDays ?? 7;
    this.databaseName = props.databaseName ?? "chat";
    this.clusterIdentifier = props.namePrefix;
    this.appUsername = props.appUsername ?? "chat_app";
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    const azs = props.vpc.availabilityZones;
    const useProxy = props.proxy ?? true;
    const pausable = minCapacity === 0;
    const idleSessionTimeout = props.idleSessionTimeout ?? (pausable ? Duration.minutes(5) : undefined);

    new Problems()
      .add(validateDatabase(props))
      .check(readers === 0 || azs.length >= 2, "readers need a VPC with at least two AZs")
      .throwIfAny(`props of ${this.node.path}`);

    // The cluster admits the proxy (or, without one, the Lambdas) and the direct clients; the
    // proxy admits its clients. Neither has any other ingress, and the cluster has no egress.
    this.securityGroup = new ec2.SecurityGroup(this, "ClusterSg", {
      vpc: props.vpc,
      description: "Chat pipeline Aurora PostgreSQL",
      allowAllOutbound: false,
    });
    if (useProxy) {
      this.proxySecurityGroup = new ec2.SecurityGroup(this, "ProxySg", {
        vpc: props.vpc,
        description: "Chat pipeline RDS Proxy",
        // The proxy reaches the cluster and Secrets Manager (through its VPC endpoint).
        allowAllOutbound: true,
      });
      for (const client of props.proxyClients) {
        this.proxySecurityGroup.addIngressRule(client, ec2.Port.tcp(POSTGRES_PORT), "Lambdas to RDS Proxy");
      }
    } else {
      for (const client of props.proxyClients) {
        this.securityGroup.addIngressRule(client, ec2.Port.tcp(POSTGRES_PORT), "Lambdas to Aurora");
      }
    }
    for (const client of props.directClients) {
      this.securityGroup.addIngressRule(client, ec2.Port.tcp(POSTGRES_PORT), "Schema migrations to Aurora");
    }

    const [major] = engineVersion.split(".");
    const version = rds.AuroraPostgresEngineVersion.of(engineVersion, major ?? engineVersion);
    const engine = rds.DatabaseClusterEngine.auroraPostgres({ version });

    const instance = (name: string, availabilityZone: string | undefined, reader: boolean) =>
      rds.ClusterInstance.serverlessV2(name, {
        publiclyAccessible: false,
        autoMinorVersionUpgrade: true,
        ...(availabilityZone !== undefined ? { availabilityZone } : {}),
        // Readers in promotion tier 0/1 scale with the writer, so a failover lands on a warm instance.
        ...(reader ? { scaleWithWriter: true } : {}),
      });

    const adminSecret = new rds.DatabaseSecret(this, "AdminSecret", { username: "chat_admin" });
    adminSecret.applyRemovalPolicy(removalPolicy);

    this.cluster = new rds.DatabaseCluster(this, "Cluster", {
      engine,
      clusterIdentifier: props.namePrefix,
      defaultDatabaseName: this.databaseName,
      credentials: rds.Credentials.fromSecret(adminSecret),
      writer: instance("Writer", readers > 0 ? azs[0] : undefined, false),
      readers: Array.from({ length: readers }, (_, i) =>
        instance(`Reader${i + 1}`, azs[(i + 1) % azs.length], true),
      ),
      serverlessV2MinCapacity: minCapacity,
      serverlessV2MaxCapacity: maxCapacity,
      ...(pausable ? { serverlessV2AutoPauseDuration: props.autoPauseAfter ?? Duration.minutes(10) } : {}),
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      port: POSTGRES_PORT,
      securityGroups: [this.securityGroup],
      storageEncrypted: true,
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy,
      backup: { retention: Duration.days(backupRetentionDays), preferredWindow: "03:00-04:00" },
      preferredMaintenanceWindow: "Sun:04:30-Sun:05:30",
      copyTagsToSnapshot: true,
      // TLS for every connection, direct or through the proxy.
      parameters: {
        "rds.force_ssl": "1",
        ...(idleSessionTimeout !== undefined
          ? { idle_session_timeout: String(idleSessionTimeout.toMilliseconds()) }
          : {}),
      },
    });
    // The attached secret: the same secret, plus the cluster's host and port.
    this.adminSecret = this.cluster.secret ?? adminSecret;

    this.appSecret = new secretsmanager.Secret(this, "AppUserSecret", {
      description: `${props.namePrefix}: PostgreSQL application user (through RDS Proxy)`,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ username: this.appUsername }),
        generateStringKey: "password",
        excludePunctuation: true,
        passwordLength: 40,
      },
      removalPolicy,
    });

    if (this.proxySecurityGroup !== undefined) {
      this.proxyName = props.namePrefix;
      this.proxy = this.cluster.addProxy("Proxy", {
        dbProxyName: props.namePrefix,
        secrets: [this.appSecret],
        vpc: props.vpc,
        vpcSubnets: props.subnets,
        securityGroups: [this.proxySecurityGroup],
        requireTLS: true,
        iamAuth: false,
        // Leave headroom for the migration step and for operators connecting directly.
        maxConnectionsPercent: 90,
        maxIdleConnectionsPercent: 30,
        borrowTimeout: Duration.seconds(5),
        idleClientTimeout: Duration.minutes(15),
      });
    }
  }

  /** Hostname the Lambdas connect to (DATABASE_HOST): the proxy, or the cluster's writer endpoint. */
  get functionsEndpoint(): string {
    return this.proxy !== undefined ? this.proxy.endpoint : this.cluster.clusterEndpoint.hostname;
  }
}
