/**
 * The whole deployment of one environment: three stacks, deployed in order.
 *  - `ChatPipeline-<env>-Network`: VPC, egress, endpoints, security groups, the alarm topic;
 *  - `ChatPipeline-<env>-Data`: stateful (Aurora [+ RDS Proxy], ElastiCache, SQS, secrets, Cognito);
 *  - `ChatPipeline-<env>-App`: stateless (functions, APIs, schema migrations, dashboard, alarms).
 */
import { Tags } from "aws-cdk-lib";
import type { Construct } from "constructs";
import type { EnvironmentConfig } from "./config/types.ts";
import { assertValidEnvironment } from "./config/validate.ts";
import { AppStack } from "./stacks/app-stack.ts";
import { DataStack } from "./stacks/data-stack.ts";
import { NetworkStack } from "./stacks/network-stack.ts";

export interface ChatPipelineOptions {
  /** Forces the schema-migration step to run (any new value). @default runs when migrations change */
  readonly schemaMigrationRunId?: string;
}

export interface ChatPipeline {
  readonly network: NetworkStack;
  readonly data: DataStack;
  readonly app: AppStack;
}

export const stackName = (config: EnvironmentConfig, part: "Network" | "Data" | "App"): string =>
  `ChatPipeline-${config.name}-${part}`;

export const createChatPipeline = (
  scope: Construct,
  config: EnvironmentConfig,
  options: ChatPipelineOptions = {},
): ChatPipeline => {
  assertValidEnvironment(config);
  const env = { account: config.account, region: config.region };
  const description = (what: string) => `Chat pipeline (${config.name}): ${what}`;

  const network = new NetworkStack(scope, stackName(config, "Network"), {
    env,
    config,
    description: description("network"),
  });
  const data = new DataStack(scope, stackName(config, "Data"), {
    env,
    config,
    network: network.network,
    terminationProtection: config.terminationProtection,
    description: description("stateful resources"),
  });
  const app = new AppStack(scope, stackName(config, "App"), {
    env,
    config,
    network: network.network,
    alarmTopic: network.alarmTopic,
    data,
    description: description("functions, APIs and monitoring"),
    ...(options.schemaMigrationRunId !== undefined
      ? { schemaMigrationRunId: options.schemaMigrationRunId }
      : {}),
  });

  for (const stack of [network, data, app]) {
    Tags.of(stack).add("project", "chat-pipeline");
    Tags.of(stack).add("environment", config.name);
  }
  return { network, data, app };
};
