/** Translations of the environment configuration into CDK values shared by the stacks. */
import { RemovalPolicy } from "aws-cdk-lib";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { EnvironmentConfig } from "../config/types.ts";

export const removalPolicy = (config: EnvironmentConfig): RemovalPolicy =>
  config.dataRetention === "retain" ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

/** Validated against RetentionDays by validate.ts. */
export const logRetention = (config: EnvironmentConfig): RetentionDays =>
  config.logRetentionDays as RetentionDays;

/** Prefix of physical resource names, e.g. "chat-dev". */
export const namePrefix = (config: EnvironmentConfig): string => `chat-${config.name}`;
