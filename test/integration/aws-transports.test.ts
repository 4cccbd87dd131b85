/**
 * The accept path's AWS calls — the persist queue's SendMessage(Batch) and the fan-out's
 * @connections posts — over both transports (the AWS SDK clients, and the signed requests of
 * adapters/aws/signed-http.ts), against the real protocol endpoints of the local stack: the same
 * cases, the same answers, the same outage classification.
 */
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApiGatewayConnectionNotifier,
  createManagementApiClient,
} from "../../lambdas/adapters/apigateway/api-gateway-connection-notifier.ts";
import {
  sdkConnectionsApi,
  signedConnectionsApi,
} from "../../lambdas/adapters/apigateway/connections-api.ts";
import { SignedHttp } from "../../lambdas/adapters/aws/signed-http.ts";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import { isAwsOutage, sqsClientConfig } from "../../lambdas/adapters/sqs/client.ts";
import { type SqsCalls, sdkSqsCalls, signedSqsCalls } from "../../lambdas/adapters/sqs/sqs-calls.ts";
import { SqsMessagePublisher } from "../../lambdas/adapters/sqs/sqs-message-publisher.ts";
import type { PersistEnvelope } from "../../lambdas/core/ports.ts";
import { freePort } from "../support/redis-server.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let admin: SQSClient;

beforeAll(async () => {
  t = await startTestStack();
  admin = new SQSClient({ endpoint: t.stack.sqsEndpoint, region: "us-east-1", useQueueUrlAsEndpoint: false });
});

afterAll(async () => {
  admin.destroy();
  await t.stop();
});

const credentials = { accessKeyId: "test", secretAccessKey: "test" };
const signedHttp = (service: string, endpoint: string, maxAttempts = 2) =>
  new SignedHttp({
    service,
    region: "us-east-1",
    credentials,
    endpoint: new URL(endpoint),
    timeoutMs: 1000,
    maxAttempts,
  });

const SQS_TRANSPORTS: Record<string, (endpoint: string) => SqsCalls> = {
  sdk: (endpoint) =>
    sdkSqsCalls(
      new SQSClient({ ...sqsClientConfig({ timeoutMs: 1000 }), endpoint, region: "us-east-1", credentials }),
    ),
  signed: (endpoint) => signedSqsCalls(signedHttp("sqs", endpoint)),
};

const envelope = (i: number): PersistEnvelope =>
  ({
    v: 1,
    message: { id: `m-${i}`, content: `hello ${i} ✓ "quoted"` },
    owner_id: "u",
    accepted_at_ms: i,
  }) as unknown as PersistEnvelope;

const guard = () => new TierGuard("sqs", { failureThreshold: 1000, halfOpenAfterMs: 1000 }, isAwsOutage);

const drain = async (queueUrl: string, expected: number): Promise<string[]> => {
  const bodies: string[] = [];
  await waitFor(
    async () => {
      const { Messages = [] } = await admin.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      bodies.push(...Messages.map((m) => m.Body ?? ""));
      if (Messages.length > 0)
        await admin.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? "" })),
          }),
        );
      return bodies.length >= expected;
    },
    { what: `${expected} messages in the queue` },
  );
  return bodies;
};

describe.each(Object.keys(SQS_TRANSPORTS))("persist queue publisher over the %s transport", (name) => {
  const calls = () => (SQS_TRANSPORTS[name] as (e: string) => SqsCalls)(t.stack.sqsEndpoint);

  it("sends concurrent publishes as batches: every envelope arrives once, byte for byte", async () => {
    const { QueueUrl } = await admin.send(new CreateQueueCommand({ QueueName: `transport-${name}-batch` }));
    const publisher = new SqsMessagePublisher(calls(), QueueUrl as string, guard());
    const envelopes = Array.from({ length: 25 }, (_, i) => envelope(i));
    await Promise.all(envelopes.map((e) => publisher.publish(e)));
    await publisher.publish(envelope(99), { delaySeconds: 0 });

    const bodies = await drain(QueueUrl as string, 26);
    expect(bodies.map((b) => JSON.parse(b)).sort((a, b) => a.accepted_at_ms - b.accepted_at_ms)).toEqual([
      ...envelopes,
      envelope(99),
    ]);
    await publisher.ping();
  });

  it("refuses a queue that does not exist as the sender's fault, not an outage", async () => {
    const publisher = new SqsMessagePublisher(
      calls(),
      `${t.stack.sqsEndpoint}/000000000000/no-such-queue`,
      guard(),
    );
    const error = await publisher.publish(envelope(1)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeDefined();
    expect(isAwsOutage(error)).toBe(false);
  });

  it("reports an unreachable endpoint as an outage", async () => {
    const port = await freePort();
    const sqs = (SQS_TRANSPORTS[name] as (e: string) => SqsCalls)(`http://127.0.0.1:${port}`);
    const error = await sqs
      .sendMessage({ QueueUrl: `http://127.0.0.1:${port}/000000000000/q`, MessageBody: "x" })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeDefined();
    expect(isAwsOutage(error)).toBe(true);
  });
});

describe.each(["sdk", "signed"])("@connections over the %s transport", (name) => {
  const notifier = () => {
    const endpoint = t.stack.managementEndpoint;
    const api =
      name === "sdk"
        ? sdkConnectionsApi(createManagementApiClient(endpoint, 1000))
        : signedConnectionsApi(signedHttp("execute-api", endpoint, 1));
    return new ApiGatewayConnectionNotifier(
      api,
      new TierGuard("websocket", { failureThreshold: 1000, halfOpenAfterMs: 1000 }, isAwsOutage),
    );
  };

  it("posts a frame to a connection, says gone for one that is not there, and disconnects", async () => {
    const before = new Set(t.stack.websocket.connectionIds());
    const socket = await t.ws(await t.token("alice"));
    const id = t.stack.websocket.connectionIds().find((c) => !before.has(c)) as string;
    const n = notifier();

    const frame = JSON.stringify({ type: "test.frame", transport: name, text: "héllo ✓" });
    expect(await n.send(id, frame)).toBe("sent");
    const received = await socket.next((f) => f.type === "test.frame");
    expect(received).toEqual(JSON.parse(frame));

    expect(await n.send("no-such-connection", frame)).toBe("gone");
    await n.disconnect(id);
    await socket.closed();
    expect(await n.send(id, frame)).toBe("gone");
  });
});
