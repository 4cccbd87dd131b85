/**
 * SQS clients with tight timeouts. The endpoint comes from the SDK's own configuration
 * (AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL), so the same code talks to AWS, LocalStack or the
 * built-in local stack.
 */
import { SQSClient, type SQSClientConfig } from "@aws-sdk/client-sqs";
import { keepAliveHandler } from "../http-handler.ts";

export const sqsClientConfig = (options: { timeoutMs: number; maxAttempts?: number }): SQSClientConfig => ({
  maxAttempts: options.maxAttempts ?? 2,
  // Send to the configured endpoint, not to the queue URL's host: LocalStack and the local stack
  // hand out queue URLs whose host names need DNS tricks; in AWS the two are the same.
  useQueueUrlAsEndpoint: false,
  // The SDK's MD5 check of message bodies costs ~0.2 ms of CPU per call (measured, scripts/bench);
  // TLS already protects the bodies in transit, and consumers validate what they parse.
  md5: false,
  requestHandler: keepAliveHandler({ timeoutMs: options.timeoutMs }),
});

export const createSqsClient = (options: { timeoutMs: number; maxAttempts?: number }): SQSClient =>
  new SQSClient(sqsClientConfig(options));

/** Throttling, 5xx and network failures are outages; a 4xx is a bug or a misconfiguration. */
export const isAwsOutage = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null) return true;
  if ((error as { senderFault?: unknown }).senderFault === true) return false;
  const { $metadata, name } = error as { $metadata?: { httpStatusCode?: number }; name?: string };
  const status = $metadata?.httpStatusCode;
  if (status === undefined) return true;
  return status >= 500 || status === 429 || name === "ThrottlingException" || name === "RequestThrottled";
};
