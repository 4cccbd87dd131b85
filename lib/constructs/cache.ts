/**
 * Redis-compatible cache: ElastiCache Serverless for Valkey in the isolated subnets. Serverless
 * caches always encrypt in transit (TLS only) and at rest, and always run across the AZs of their
 * subnets. Access control is RBAC: a user group holding one password user for the application,
 * whose password lives in Secrets Manager ({username, password}, REDIS_AUTH_SECRET_ARN); its
 * ACL only reaches the application's key prefix.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as elasticache from "aws-cdk-lib/aws-elasticache";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

export interface CacheProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** Security groups allowed to connect (the Lambdas). */
  readonly clients: readonly ec2.ISecurityGroup[];
  /** Prefix of physical names (cache, user, user group), lowercase, e.g. "chat-dev". */
  readonly namePrefix: string;
  /** @default "8" */
  readonly majorEngineVersion?: "7" | "8";
  /** @default 1 */
  readonly maxDataStorageGb?: number;
  /** @default 5000 */
  readonly maxEcpuPerSecond?: number;
  /** @default 0 (no snapshots) */
  readonly snapshotRetentionDays?: number;
  /** Key prefix the application user may touch (REDIS_KEY_PREFIX). @default "chat:" */
  readonly keyPrefix?: string;
  /** @default RemovalPolicy.DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

const NAME = /^[a-z][a-z0-9-]{0,30}$/;

type CacheSettings = Omit<CacheProps, "vpc" | "subnets" | "clients" | "removalPolicy">;

/** ElastiCache Serverless: 6379 for the primary endpoint, 6380 for reads from replicas. */
export const CACHE_PORTS = ec2.Port.tcpRange(6379, 6380);

export const validateCache = (props: CacheSettings): readonly string[] => {
  const keyPrefix = props.keyPrefix ?? "chat:";
  return new Problems()
    .check(NAME.test(props.namePrefix), `namePrefix "${props.namePrefix}" must match ${NAME}`)
    .integer("maxDataStorageGb", props.maxDataStorageGb ?? 1, 1, 5_000)
    .integer("maxEcpuPerSecond", props.maxEcpuPerSecond ?? 5_000, 1_000, 15_000_000)
    .integer("snapshotRetentionDays", props.snapshotRetentionDays ?? 0, 0, 35)
    .check(/^[A-Za-z0-9:_-]+$/.test(keyPrefix), `keyPrefix "${keyPrefix}" has unsafe characters`).list;
};

export class Cache extends Construct {
  readonly cache: elasticache.CfnServerlessCache;
  /** Secret {username, password} of the application user. */
  readonly authSecret: secretsmanager.ISecret;
  readonly keyPrefix: string;
  readonly securityGroup: ec2.SecurityGroup;
  /** Physical name of the serverless cache (the `clusterId` dimension of its metrics). */
  readonly name: string;

  constructor(scope: Construct, id: string, props: CacheProps) {
    super(scope, id);
    const maxDataStorageGb = props.maxDataStorageGb ?? 1;
    const maxEcpuPerSecond = props.maxEcpuPerSecond ?? 5_000;
    const snapshotRetentionDays = props.snapshotRetentionDays ?? 0;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    this.keyPrefix = props.keyPrefix ?? "chat:";
    this.name = props.namePrefix;

    new Problems().add(validateCache(props)).throwIfAny(`props of ${this.node.path}`);

    this.securityGroup = new ec2.SecurityGroup(this, "Sg", {
      vpc: props.vpc,
      description: "Chat pipeline ElastiCache Serverless",
      allowAllOutbound: false,
    });
    for (const client of props.clients) {
      this.securityGroup.addIngressRule(client, CACHE_PORTS, "Lambdas to ElastiCache");
    }

    const username = `${props.namePrefix}-app`;
    this.authSecret = new secretsmanager.Secret(this, "AuthSecret", {
      description: `${props.namePrefix}: ElastiCache RBAC user of the application`,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ username }),
        generateStringKey: "password",
        // ElastiCache passwords: 16–128 printable characters without spaces, quotes, "/" or "@".
        excludePunctuation: true,
        passwordLength: 64,
      },
      removalPolicy,
    });

    const user = new elasticache.CfnUser(this, "AppUser", {
      engine: "valkey",
      userId: username,
      userName: username,
      // Every command on the application's keys only. Keyless commands (PING, INFO, CLUSTER
      // SLOTS, SCRIPT LOAD, EVALSHA) stay available for the cluster client.
      accessString: `on ~${this.keyPrefix}* +@all`,
      authenticationMode: {
        Type: "password",
        Passwords: [this.authSecret.secretValueFromJson("password").unsafeUnwrap()],
      },
    });

    // A Valkey user group needs no "default" user: unauthenticated connections are refused.
    const userGroup = new elasticache.CfnUserGroup(this, "UserGroup", {
      engine: "valkey",
      userGroupId: `${props.namePrefix}-users`,
      userIds: [user.userId],
    });
    userGroup.node.addDependency(user);

    this.cache = new elasticache.CfnServerlessCache(this, "Serverless", {
      serverlessCacheName: props.namePrefix,
      description: "Chat pipeline hot cache (threads, recent messages, idempotency, connections)",
      engine: "valkey",
      majorEngineVersion: props.majorEngineVersion ?? "8",
      subnetIds: props.vpc.selectSubnets(props.subnets).subnetIds,
      securityGroupIds: [this.securityGroup.securityGroupId],
      userGroupId: userGroup.userGroupId,
      cacheUsageLimits: {
        dataStorage: { maximum: maxDataStorageGb, unit: "GB" },
        ecpuPerSecond: { maximum: maxEcpuPerSecond },
      },
      ...(snapshotRetentionDays > 0
        ? { snapshotRetentionLimit: snapshotRetentionDays, dailySnapshotTime: "03:00" }
        : {}),
    });
    this.cache.node.addDependency(userGroup);
    for (const r of [user, userGroup, this.cache]) r.applyRemovalPolicy(removalPolicy);
  }

  /** REDIS_URL: TLS (`rediss://`) to the cluster endpoint. */
  get url(): string {
    return `rediss://${this.cache.attrEndpointAddress}:${this.cache.attrEndpointPort}`;
  }
}
