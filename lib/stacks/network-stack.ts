import { CfnOutput, Fn, Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "../config/types.ts";
import { AlarmTopic } from "../constructs/alarm-topic.ts";
import { Network } from "../constructs/network.ts";
import { EgressAlarms } from "../constructs/observability.ts";
import { logRetention, removalPolicy } from "./policies.ts";

export interface NetworkStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * The VPC, its egress and endpoints, the security groups of every tier, and the alarm topic (the
 * first stack deployed, so every stack's alarms have somewhere to go). Deploy it alone first when
 * ClickHouse must allow-list the egress addresses or a PrivateLink endpoint (docs/deploy.md).
 */
export class NetworkStack extends Stack {
  readonly network: Network;
  readonly alarmTopic: AlarmTopic;

  constructor(scope: Construct, id: string, props: NetworkStackProps) {
    super(scope, id, props);
    const { config } = props;
    const { privateLinkServiceName } = config.clickhouse;
    this.network = new Network(this, "Network", {
      maxAzs: config.network.maxAzs,
      egress: config.network.egress,
      interfaceEndpoints: config.network.interfaceEndpoints,
      ...(privateLinkServiceName !== undefined
        ? {
            privateLinkServices: [
              {
                id: "ClickHouse",
                serviceName: privateLinkServiceName,
                port: config.clickhouse.privateLinkPort ?? 8443,
              },
            ],
          }
        : {}),
      flowLogs: config.network.flowLogs,
      logRetention: logRetention(config),
      removalPolicy: removalPolicy(config),
    });
    this.alarmTopic = new AlarmTopic(this, "Alarms", {
      appEnv: config.name,
      emails: config.alarms.emails,
      topicArns: config.alarms.snsTopicArns,
    });
    new EgressAlarms(this, "EgressAlarms", {
      appEnv: config.name,
      alarmTargets: this.alarmTopic.targets,
      natGatewayIds: this.network.natGatewayIds,
      ...(this.network.natInstance !== undefined ? { natInstance: this.network.natInstance } : {}),
    });

    if (this.network.egressAddresses.length > 0) {
      new CfnOutput(this, "EgressPublicIps", {
        value: Fn.join(",", [...this.network.egressAddresses]),
        description:
          "Public IPv4 addresses the functions reach the internet from (allow-list them in ClickHouse)",
      });
    }
    new CfnOutput(this, "AlarmTopicArn", { value: this.alarmTopic.topic.topicArn });
  }
}
