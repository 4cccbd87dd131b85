/**
 * A persist consumer in a process of its own, so a fault test can kill it with SIGKILL in the
 * middle of a batch. Configuration comes from the environment (CONSUMER_QUEUE_URL, CONSUMER_QUEUE_ARN,
 * CONSUMER_SQS_ENDPOINT, plus the handler's own variables); it prints "ready" once polling.
 */
import { SQSClient } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { CONSUMER_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { SqsEventSource } from "../../scripts/local-stack/event-source.ts";
import { LocalFunction } from "../../scripts/local-stack/lambda-runtime.ts";

const required = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is required`);
  return value;
};

const source = new SqsEventSource(
  new SQSClient({
    endpoint: required("CONSUMER_SQS_ENDPOINT"),
    region: "us-east-1",
    useQueueUrlAsEndpoint: false,
  }),
  {
    queueUrl: required("CONSUMER_QUEUE_URL"),
    queueArn: required("CONSUMER_QUEUE_ARN"),
    fn: new LocalFunction<SQSEvent, SQSBatchResponse | undefined>(
      CONSUMER_FUNCTIONS.persist.id,
      CONSUMER_FUNCTIONS.persist.entry,
      60_000,
    ),
    batchSize: 100,
    maxBatchingWindowMs: 200,
    concurrency: 1,
  },
);
source.start();
console.log("ready");
