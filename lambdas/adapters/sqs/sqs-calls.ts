/**
 * The SQS calls the persist queue's publisher makes, behind one small interface with two
 * transports: the AWS SDK client, and the lighter signed request (aws/signed-http.ts) that the
 * accept path uses — the same AWS JSON 1.0 protocol the SDK speaks to SQS. Both answer in the SDK's
 * shapes and fail with the SDK's error shape, and the contract suite runs the publisher over both
 * against the local SQS endpoint.
 */
import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SendMessageBatchResult,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { jsonError, type SignedHttp } from "../aws/signed-http.ts";

export interface SqsCalls {
  sendMessage(input: { QueueUrl: string; MessageBody: string; DelaySeconds?: number }): Promise<void>;
  sendMessageBatch(input: {
    QueueUrl: string;
    Entries: SendMessageBatchRequestEntry[];
  }): Promise<Pick<SendMessageBatchResult, "Successful" | "Failed">>;
  /** A cheap call that succeeds when the queue answers (health checks). */
  ping(queueUrl: string): Promise<void>;
}

export const sdkSqsCalls = (client: SQSClient): SqsCalls => ({
  async sendMessage(input) {
    await client.send(new SendMessageCommand(input));
  },
  sendMessageBatch: (input) => client.send(new SendMessageBatchCommand(input)),
  async ping(queueUrl) {
    await client.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }),
    );
  },
});

/** SQS over one signed AWS JSON 1.0 request per call. */
export const signedSqsCalls = (http: SignedHttp): SqsCalls => {
  const call = async <T>(action: string, input: unknown): Promise<T> => {
    const response = await http.request("POST", "/", JSON.stringify(input), {
      "content-type": "application/x-amz-json-1.0",
      "x-amz-target": `AmazonSQS.${action}`,
      // The SDK sends this to queues of the query-compatible service: errors then also name the
      // query-protocol code (x-amzn-query-error), which tells the sender's fault from SQS's.
      "x-amzn-query-mode": "true",
    });
    if (response.status !== 200) throw jsonError(response);
    return (response.body === "" ? {} : JSON.parse(response.body)) as T;
  };
  return {
    async sendMessage(input) {
      await call("SendMessage", input);
    },
    sendMessageBatch: (input) => call("SendMessageBatch", input),
    async ping(queueUrl) {
      await call("GetQueueAttributes", {
        QueueUrl: queueUrl,
        AttributeNames: ["ApproximateNumberOfMessages"],
      });
    },
  };
};
