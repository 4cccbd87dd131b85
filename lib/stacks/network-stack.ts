import { Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config/types.ts";
import { Network } from "../constructs/network.ts";
import { logRetention, removalPolicy } from "./policies.ts";

export interface NetworkStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/** The VPC, its endpoints and the security groups of every tier. */
export class NetworkStack extends Stack {
  readonly network: Network;

  constructor(scope: Construct, id: string, props: NetworkStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.network = new Network(this, "Network", {
      maxAzs: config.network.maxAzs,
      natGateways: config.network.natGateways,
      flowLogs: config.network.flowLogs,
      logRetention: logRetention(config),
      removalPolicy: removalPolicy(config),
    });
  }
}
