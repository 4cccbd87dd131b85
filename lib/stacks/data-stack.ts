import { Duration, Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config/types.ts";
import { Cache } from "../constructs/cache.ts";
import { Database } from "../constructs/database.ts";
import { Identity } from "../constructs/identity.ts";
import type { Network } from "../constructs/network.ts";
import { Queues } from "../constructs/queues.ts";
import { namePrefix, removalPolicy } from "./policies.ts";

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
  readonly network: Network;
}

/**
 * Everything that holds state: PostgreSQL, the cache, the queues and their dead-letter queues,
 * the generated credentials and the user pool. Kept apart from the stateless App stack so the
 * latter can be replaced freely; in prod it is retained on deletion and termination-protected.
 */
export class DataStack extends Stack {
  readonly database: Database;
  readonly cache: Cache;
  readonly queues: Queues;
  readonly identity: Identity;

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, props);
    const { config, network } = props;
    const policy = removalPolicy(config);
    const prefix = namePrefix(config);

    this.database = new Database(this, "Database", {
      vpc: network.vpc,
      subnets: network.dataSubnets,
      proxyClients: [network.securityGroups.functions],
      directClients: [network.securityGroups.migrations],
      namePrefix: prefix,
      engineVersion: config.database.engineVersion,
      minCapacity: config.database.minCapacity,
      maxCapacity: config.database.maxCapacity,
      proxy: config.database.connection === "proxy",
      ...(config.database.autoPauseAfterMinutes !== undefined
        ? { autoPauseAfter: Duration.minutes(config.database.autoPauseAfterMinutes) }
        : {}),
      readers: config.database.readers,
      backupRetentionDays: config.database.backupRetentionDays,
      deletionProtection: config.database.deletionProtection,
      databaseName: config.database.databaseName,
      removalPolicy: policy,
    });

    this.cache = new Cache(this, "Cache", {
      vpc: network.vpc,
      subnets: network.dataSubnets,
      clients: [network.securityGroups.functions],
      namePrefix: prefix,
      majorEngineVersion: config.cache.majorEngineVersion,
      maxDataStorageGb: config.cache.maxDataStorageGb,
      maxEcpuPerSecond: config.cache.maxEcpuPerSecond,
      snapshotRetentionDays: config.cache.snapshotRetentionDays,
      removalPolicy: policy,
    });

    const queue = (c: EnvironmentConfig["queues"]["persist"]) => ({
      consumer: c,
      maxReceiveCount: c.maxReceiveCount,
      retentionDays: config.queues.retentionDays,
      removalPolicy: policy,
    });
    this.queues = new Queues(this, "Queues", {
      persist: queue(config.queues.persist),
      analytics: queue(config.queues.analytics),
      erasure: queue(config.queues.erasure),
    });

    this.identity = new Identity(
      this,
      "Identity",
      config.auth.kind === "cognito"
        ? { ...config.auth, userPoolName: prefix, removalPolicy: policy }
        : { ...config.auth },
    );
  }
}
