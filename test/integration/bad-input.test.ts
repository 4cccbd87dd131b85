/**
 * Every bad request gets a 4xx JSON error with a stable code, and nothing is written anywhere:
 * not to Redis, not to SQS, not to PostgreSQL, not to ClickHouse.
 */
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiResponse, startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let alice: string;
let bob: string;
let aliceThread: string;
let bobThread: string;
let bobMessage: string;

beforeAll(async () => {
  t = await startTestStack();
  // A user of its own: other test files create threads for "alice" in the same database.
  alice = await t.token(`alice-${randomUUID()}`);
  bob = await t.token("bob");
  aliceThread = (await t.createThread(alice)).id;
  bobThread = (await t.createThread(bob)).id;
  const posted = await t.request<{ id: string }>("POST", `/api/threads/${bobThread}/messages`, {
    token: bob,
    body: { message: "bob's secret" },
  });
  bobMessage = posted.body.id;
  await waitFor(async () => (await t.rowsInPostgres(bobMessage)) === 1, { what: "bob's message persisted" });
});

afterAll(async () => {
  await t.stop();
});

const expectError = (res: ApiResponse, status: number, code: string): void => {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  const body = res.body as { error?: { code?: string; message?: string } };
  expect(body.error?.code).toBe(code);
  expect(typeof body.error?.message).toBe("string");
  expect(JSON.stringify(res.body)).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
};

/** Nothing of alice's thread exists anywhere but its record. */
const expectNothingWritten = async (): Promise<void> => {
  const { rows } = await t.pg.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
    [aliceThread],
  );
  expect(rows[0]?.n).toBe(0);
  expect(await t.redis.exists(`${t.redisPrefix}{t:${aliceThread}}:msgs`)).toBe(0);
  expect(await t.redis.exists(`${t.redisPrefix}{t:${aliceThread}}:seq`)).toBe(0);
  const result = await t.clickhouse.query({
    query: `SELECT count() AS n FROM messages WHERE thread_id = '${aliceThread}'`,
    format: "JSONEachRow",
  });
  expect(Number((await result.json<{ n: string }>())[0]?.n)).toBe(0);
  // Only bob's one message ever reached the persist queue.
  expect(t.stack.eventSources.persist.stats.records).toBe(1);
};

describe("authentication", () => {
  const routes = (): [string, string][] => [
    ["POST", "/api/threads"],
    ["GET", "/api/threads"],
    ["GET", `/api/threads/${aliceThread}`],
    ["POST", `/api/threads/${aliceThread}/messages`],
    ["GET", `/api/threads/${aliceThread}/messages`],
    ["GET", `/api/messages/${bobMessage}`],
    ["POST", "/api/admin/recover-redis-cache"],
    ["GET", "/api/health"],
  ];

  it("answers 401 on every route without a token, with a malformed one, or one signed with another key", async () => {
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("alice")
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("some-other-secret-that-is-long-enough-32"));
    for (const [method, path] of routes()) {
      const variants: Record<string, string>[] = [
        {},
        { authorization: "Bearer not.a.jwt" },
        { authorization: `Bearer ${forged}` },
      ];
      for (const headers of variants) {
        // The health check answers machines without a token (but never takes a bad one).
        if (path === "/api/health" && headers.authorization === undefined) continue;
        const res = await t.request(method, path, {
          headers,
          ...(method === "POST" ? { body: { message: "x" } } : {}),
        });
        expectError(res, 401, "unauthorized");
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      }
    }
    await expectNothingWritten();
  });
});

describe("another user's data", () => {
  it("is answered 404 as if it did not exist, on every route", async () => {
    expectError(
      await t.request("GET", `/api/threads/${bobThread}`, { token: alice }),
      404,
      "thread_not_found",
    );
    expectError(
      await t.request("GET", `/api/threads/${bobThread}/messages`, { token: alice }),
      404,
      "thread_not_found",
    );
    expectError(
      await t.request("POST", `/api/threads/${bobThread}/messages`, {
        token: alice,
        body: { message: "hi" },
      }),
      404,
      "thread_not_found",
    );
    expectError(
      await t.request("GET", `/api/messages/${bobMessage}`, { token: alice }),
      404,
      "message_not_found",
    );
    // Indistinguishable from a thread that does not exist at all.
    const missing = await t.request("GET", `/api/threads/${randomUUID()}`, { token: alice });
    expectError(missing, 404, "thread_not_found");
    expect((missing.body as { error: { message: string } }).error.message).toBe(
      (
        (await t.request("GET", `/api/threads/${bobThread}`, { token: alice })).body as {
          error: { message: string };
        }
      ).error.message,
    );
    const { rows } = await t.pg.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
      [bobThread],
    );
    expect(rows[0]?.n).toBe(1);
  });

  it("does not show in the caller's thread list", async () => {
    const res = await t.request<{ threads: { id: string }[] }>("GET", "/api/threads", { token: alice });
    expect(res.status).toBe(200);
    expect(res.body.threads.map((th) => th.id)).toEqual([aliceThread]);
  });
});

describe("malformed requests", () => {
  const post = (body: unknown, rawBody?: string) =>
    t.request("POST", `/api/threads/${aliceThread}/messages`, {
      token: alice,
      ...(rawBody !== undefined ? { rawBody } : { body }),
    });

  it("rejects each with its status and code, and writes nothing", async () => {
    expectError(await post(undefined, "{not json"), 400, "malformed_json");
    expectError(await post(undefined, ""), 400, "malformed_json");
    expectError(await post({ message: "" }), 422, "validation_failed");
    expectError(await post({ message: "   \n\t " }), 422, "validation_failed");
    expectError(await post({}), 422, "validation_failed");
    expectError(await post({ message: 42 }), 422, "validation_failed");
    expectError(await post([{ message: "in an array" }]), 422, "validation_failed");
    expectError(await post({ message: "x".repeat(16_385) }), 413, "message_too_large");
    expectError(await post({ message: "é".repeat(8_193) }), 413, "message_too_large");
    expectError(
      await post(undefined, JSON.stringify({ message: "x".repeat(270_000) })),
      413,
      "payload_too_large",
    );
    expectError(
      await post({ message: "hi", metadata: { blob: "x".repeat(5000) } }),
      413,
      "metadata_too_large",
    );
    for (const metadata of [[1, 2], "text", 7, null]) {
      expectError(await post({ message: "hi", metadata }), 422, "validation_failed");
    }
    const unknown = await post({ message: "hi", colour: "blue" });
    expectError(unknown, 422, "validation_failed");
    expect(JSON.stringify(unknown.body)).toContain("colour");
    expectError(await post({ message: "nul \u0000 inside" }), 422, "validation_failed");
    expectError(await post({ message: "hi", client_message_id: "has spaces" }), 422, "validation_failed");
    expectError(
      await t.request("POST", `/api/threads/${aliceThread}/messages`, {
        token: alice,
        body: { message: "hi", client_message_id: "a" },
        headers: { "idempotency-key": "b" },
      }),
      400,
      "idempotency_key_mismatch",
    );
    await expectNothingWritten();
  });

  it("rejects ids that are not UUIDs with 400", async () => {
    expectError(
      await t.request("POST", "/api/threads/not-a-uuid/messages", { token: alice, body: { message: "x" } }),
      400,
      "invalid_id",
    );
    expectError(await t.request("GET", "/api/threads/123", { token: alice }), 400, "invalid_id");
    expectError(
      await t.request("GET", "/api/messages/'; DROP TABLE messages;--", { token: alice }),
      400,
      "invalid_id",
    );
    expectError(
      await t.request("POST", "/api/admin/recover-redis-cache", {
        token: await t.token("root", ["admin"]),
        body: { thread_id: "nope" },
      }),
      400,
      "invalid_id",
    );
    await expectNothingWritten();
  });

  it("rejects bad history queries", async () => {
    const path = `/api/threads/${aliceThread}/messages`;
    expectError(await t.request("GET", `${path}?limit=abc`, { token: alice }), 422, "validation_failed");
    expectError(await t.request("GET", `${path}?limit=0`, { token: alice }), 422, "validation_failed");
    expectError(await t.request("GET", `${path}?limit=1000`, { token: alice }), 422, "validation_failed");
    expectError(await t.request("GET", `${path}?before=1&after=2`, { token: alice }), 400, "invalid_cursor");
    expectError(await t.request("GET", `${path}?sort=desc`, { token: alice }), 422, "validation_failed");
    expectError(
      await t.request("GET", "/api/threads?cursor=garbage", { token: alice }),
      400,
      "invalid_cursor",
    );
  });

  it("answers an unknown route with a JSON 404", async () => {
    expectError(await t.request("GET", "/api/nothing-here", { token: alice }), 404, "route_not_found");
    expectError(
      await t.request("PUT", `/api/threads/${aliceThread}`, { token: alice, body: { title: "x" } }),
      404,
      "route_not_found",
    );
  });
});

describe("admin routes", () => {
  it("need the admin claim", async () => {
    expectError(
      await t.request("POST", "/api/admin/recover-redis-cache", {
        token: alice,
        body: { thread_id: bobThread },
      }),
      403,
      "admin_required",
    );
    const admin = await t.token("root", ["admin"]);
    const res = await t.request("POST", "/api/admin/recover-redis-cache", {
      token: admin,
      body: { thread_id: bobThread },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ thread_id: bobThread, backfilled_messages: 1, recovery_success: true });
  });
});
