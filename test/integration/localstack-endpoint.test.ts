/**
 * The handlers find SQS through the SDK's standard endpoint variables, so the same code talks to
 * AWS, LocalStack or the built-in local stack. Here the SQS endpoint sits on LocalStack's port
 * (4566) with LocalStack's queue-URL shape, and the handlers only get `AWS_ENDPOINT_URL`, as they
 * would under LocalStack.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;

beforeAll(async () => {
  t = await startTestStack({
    sqsPort: 4566,
    sqsHost: "localhost.localstack.cloud",
    env: { AWS_ENDPOINT_URL: "http://localhost:4566" },
  });
});

afterAll(async () => {
  await t.stop();
});

describe("with LocalStack's SQS endpoint shape", () => {
  it("accepts, persists and archives a message", async () => {
    expect(t.stack.queues.persist.url).toMatch(
      /^http:\/\/sqs\.us-east-1\.localhost\.localstack\.cloud:4566\/000000000000\/t-[0-9a-f]+-persist$/,
    );
    expect(t.stack.env.PERSIST_QUEUE_URL).toBe(t.stack.queues.persist.url);
    expect(process.env.AWS_ENDPOINT_URL_SQS).toBeUndefined();

    const alice = await t.token("alice");
    const thread = await t.createThread(alice);
    const res = await t.request<{ id: string; durability: string }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      {
        token: alice,
        body: { message: "through LocalStack's endpoint" },
      },
    );
    expect(res.status).toBe(201);
    expect(res.body.durability).toBe("queued");
    await waitFor(async () => (await t.rowsInClickHouse(res.body.id)) === 1, { what: "archived" });
    expect(await t.rowsInPostgres(res.body.id)).toBe(1);
  });
});
