/**
 * The admin analytics read when ClickHouse cannot be reached: 503 with Retry-After, as for any
 * tier outage. (A file of its own: handler modules, and so their clients, are per test file.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";

let t: TestStack;

beforeAll(async () => {
  // Nothing listens there: every call is refused at once.
  t = await startTestStack({ env: { CLICKHOUSE_URL: "http://127.0.0.1:9", CLICKHOUSE_TIMEOUT_MS: "1000" } });
});

afterAll(async () => {
  await t.stop();
});

describe("the admin analytics read without ClickHouse", () => {
  it("answers 503 service_unavailable with Retry-After, and still 403 to a non-admin", async () => {
    const res = await t.request<{ error: { code: string } }>("GET", "/api/admin/analytics", {
      token: await t.token("root", ["admin"]),
    });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("service_unavailable");
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);

    const user = await t.request<{ error: { code: string } }>("GET", "/api/admin/analytics", {
      token: await t.token("alice"),
    });
    expect(user.status).toBe(403);
  });

  it("keeps feedback working: PostgreSQL takes it, the analytics queue carries it for later", async () => {
    const alice = await t.token("alice");
    const thread = await t.createThread(alice);
    const reply = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
      token: await t.token("assistant-bot", ["service"]),
      body: { message: "Lisbon.", role: "assistant" },
    });
    const put = await t.request("PUT", `/api/messages/${reply.body.id}/feedback`, {
      token: alice,
      body: { rating: "up" },
    });
    expect(put.status).toBe(200);
  });
});
