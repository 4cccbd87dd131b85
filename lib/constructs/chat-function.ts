/**
 * One Lambda of the pipeline, built the same way for every handler: NodejsFunction on Node 22,
 * arm64, bundled by the local esbuild (never Docker) into a minified ESM file with a source map,
 * in the VPC's private subnets, logging to its own log group with the environment's retention.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

/** The repository root: handler entries in lambdas/handlers/catalog.ts are relative to it. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export const RUNTIME = lambda.Runtime.NODEJS_22_X;
export const ARCHITECTURE = lambda.Architecture.ARM_64;

/**
 * esbuild settings of every function. ESM output needs `require` for the CommonJS dependencies
 * that load Node built-ins (pg, ioredis): the banner defines it. keepNames: errors are told apart
 * by `error.name`, which some libraries derive from the class name (ioredis' ReplyError).
 * The AWS SDK is bundled (pinned by package-lock.json) rather than taken from the runtime.
 */
export const BUNDLING: nodejs.BundlingOptions = {
  format: nodejs.OutputFormat.ESM,
  target: "node22",
  mainFields: ["module", "main"],
  banner:
    "import { createRequire as __chatCreateRequire } from 'node:module'; const require = __chatCreateRequire(import.meta.url);",
  minify: true,
  keepNames: true,
  sourceMap: true,
  sourcesContent: false,
  bundleAwsSDK: true,
  // Optional native binding of pg, never installed.
  externalModules: ["pg-native"],
  forceDockerBundling: false,
  tsconfig: join(REPO_ROOT, "tsconfig.json"),
};

export interface ChatFunctionProps {
  /** Handler file relative to the repository root (`export const handler`). */
  readonly entry: string;
  readonly description?: string;
  /** @default 512 */
  readonly memoryMb?: number;
  /** @default Duration.seconds(10) */
  readonly timeout?: Duration;
  readonly environment: Readonly<Record<string, string>>;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroups: readonly ec2.ISecurityGroup[];
  /** @default RetentionDays.ONE_WEEK */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the log group. @default RemovalPolicy.DESTROY */
  readonly logRemovalPolicy?: RemovalPolicy;
}

export class ChatFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ChatFunctionProps) {
    super(scope, id);
    const memoryMb = props.memoryMb ?? 512;
    const timeout = props.timeout ?? Duration.seconds(10);
    const problems = new Problems();
    problems.integer("memoryMb", memoryMb, 128, 10_240);
    problems.integer("timeout (s)", timeout.toSeconds(), 1, 900);
    problems.check(
      /^lambdas\/.+\.ts$/.test(props.entry),
      `entry must be a .ts file under lambdas/ (got ${props.entry})`,
    );
    problems.throwIfAny(`props of ${this.node.path}`);

    this.logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention ?? logs.RetentionDays.ONE_WEEK,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.DESTROY,
    });
    this.function = new nodejs.NodejsFunction(this, "Function", {
      entry: join(REPO_ROOT, props.entry),
      handler: "handler",
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, "package-lock.json"),
      runtime: RUNTIME,
      architecture: ARCHITECTURE,
      memorySize: memoryMb,
      timeout,
      description: props.description ?? props.entry,
      environment: { ...props.environment },
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [...props.securityGroups],
      logGroup: this.logGroup,
      bundling: BUNDLING,
    });
  }
}
