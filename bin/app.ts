#!/usr/bin/env node
/**
 * The CDK app. The only place that reads CDK context:
 *   -c env=<name>               the environment to synthesize (required; see lib/config/environments.ts)
 *   -c migrationRunId=<value>   forces the schema-migration step to run on this deploy
 */
import { App } from "aws-cdk-lib";
import { createChatPipeline } from "../lib/chat-pipeline.ts";
import { selectEnvironment, UnknownEnvironmentError } from "../lib/config/environments.ts";
import { ConfigurationError } from "../lib/shared/problems.ts";

const app = new App();
const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  return value === undefined || value === null || value === "" ? undefined : String(value);
};

try {
  const config = selectEnvironment(context("env"));
  const runId = context("migrationRunId");
  createChatPipeline(app, config, runId !== undefined ? { schemaMigrationRunId: runId } : {});
} catch (error) {
  // Configuration mistakes get their message, not a stack trace.
  if (error instanceof UnknownEnvironmentError || error instanceof ConfigurationError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
app.synth();
