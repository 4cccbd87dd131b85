/**
 * Synthesizes one environment the way `cdk synth` does (cdk.json feature flags, cdk.context.json
 * lookups) but without bundling the functions, which is what makes these tests fast. Each test
 * file synthesizes each environment it needs once, at module level.
 */
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import {
  type ChatPipeline,
  type ChatPipelineOptions,
  createChatPipeline,
} from "../../../lib/chat-pipeline.ts";
import { ENVIRONMENTS } from "../../../lib/config/environments.ts";
import type { EnvironmentConfig } from "../../../lib/config/types.ts";

const json = (file: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`../../../${file}`, import.meta.url), "utf8")) as Record<string, unknown>;

const cdkJsonContext = (json("cdk.json").context ?? {}) as Record<string, unknown>;
const lookups = json("cdk.context.json");

export interface Synthesized {
  readonly config: EnvironmentConfig;
  readonly pipeline: ChatPipeline;
  readonly network: Template;
  readonly data: Template;
  readonly app: Template;
  /** All three, for checks that hold everywhere. */
  readonly all: readonly Template[];
}

export const synthesize = (config: EnvironmentConfig, options: ChatPipelineOptions = {}): Synthesized => {
  const app = new App({
    context: { ...cdkJsonContext, ...lookups, "aws:cdk:bundling-stacks": [] },
    builtinCloudFormationValidation: false,
  });
  const pipeline = createChatPipeline(app, config, options);
  const network = Template.fromStack(pipeline.network);
  const data = Template.fromStack(pipeline.data);
  const appTemplate = Template.fromStack(pipeline.app);
  return { config, pipeline, network, data, app: appTemplate, all: [network, data, appTemplate] };
};

export const environment = (name: "dev" | "prod"): EnvironmentConfig => {
  const config = ENVIRONMENTS[name];
  if (config === undefined) throw new Error(`no environment ${name}`);
  return config;
};
