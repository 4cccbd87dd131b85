/**
 * The embedded SQS endpoint (fauxqs, which speaks the SQS JSON protocol of @aws-sdk/client-sqs),
 * bound to loopback, and the queues of the system: persist and analytics, each with its DLQ.
 */
import type { AddressInfo } from "node:net";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";

export interface QueueSpec {
  readonly name: string;
  readonly visibilityTimeoutSeconds: number;
  readonly maxReceiveCount: number;
}

export interface LocalQueue {
  readonly name: string;
  readonly url: string;
  readonly arn: string;
  readonly dlqUrl: string;
  readonly dlqArn: string;
}

export interface SqsEndpoint {
  readonly endpoint: string;
  close(): Promise<void>;
}

/**
 * `host` makes queue URLs look like `http://sqs.<region>.<host>:<port>/...` (LocalStack's shape);
 * by default they are `http://127.0.0.1:<port>/...`.
 */
export const startSqsEndpoint = async (port: number, host?: string): Promise<SqsEndpoint> => {
  const app = buildApp({ logger: false, ...(host !== undefined ? { host } : {}) });
  await app.listen({ host: "127.0.0.1", port });
  const actual = (app.server.address() as AddressInfo).port;
  return { endpoint: `http://127.0.0.1:${actual}`, close: () => app.close() };
};

const arnOf = async (client: SQSClient, url: string): Promise<string> => {
  const { Attributes } = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }),
  );
  const arn = Attributes?.QueueArn;
  if (arn === undefined) throw new Error(`queue ${url} has no ARN`);
  return arn;
};

/** Creates the queue, or finds it when it exists already (an endpoint whose init hooks made it). */
const ensureQueue = async (
  client: SQSClient,
  name: string,
  attributes: Record<string, string>,
): Promise<string> => {
  try {
    const { QueueUrl } = await client.send(
      new CreateQueueCommand({ QueueName: name, Attributes: attributes }),
    );
    return QueueUrl as string;
  } catch (error) {
    const code = (error as { name?: string }).name;
    if (code !== "QueueNameExists" && code !== "QueueAlreadyExists") throw error;
    const { QueueUrl } = await client.send(new GetQueueUrlCommand({ QueueName: name }));
    return QueueUrl as string;
  }
};

export const createQueueWithDlq = async (client: SQSClient, spec: QueueSpec): Promise<LocalQueue> => {
  const dlqUrl = await ensureQueue(client, `${spec.name}-dlq`, { MessageRetentionPeriod: "1209600" });
  const dlqArn = await arnOf(client, dlqUrl);
  const url = await ensureQueue(client, spec.name, {
    VisibilityTimeout: String(spec.visibilityTimeoutSeconds),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: spec.maxReceiveCount }),
  });
  return { name: spec.name, url, arn: await arnOf(client, url), dlqUrl, dlqArn };
};
