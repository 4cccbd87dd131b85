/**
 * Tokens (HS256 configuration), per-user rate limits, payload limits, and hostile strings stored
 * verbatim. The JWKS/RS256 configuration has its own file (security-jwks.test.ts).
 */
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_JWT_SECRET } from "../support/test-env.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";
import { RefusedError, WsClient } from "../support/ws-client.ts";

let t: TestStack;
let alice: string;

beforeAll(async () => {
  t = await startTestStack({
    env: {
      RATE_LIMIT_PER_SECOND: "0.2",
      RATE_LIMIT_BURST: "5",
      // The limiter admits a request when Redis does not answer in time (it fails open): on a
      // loaded machine a 100 ms timeout would let an extra message through and blur the counts.
      REDIS_COMMAND_TIMEOUT_MS: "2000",
    },
  });
  alice = await t.token("alice");
});

afterAll(async () => {
  await t.stop();
});

/** Rate limits are tight in this file: each test that writes gets a user of its own. */
let users = 0;
const freshUser = (): Promise<string> => t.token(`user-${++users}`);

const secret = new TextEncoder().encode(TEST_JWT_SECRET);
const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = (): number => Math.floor(Date.now() / 1000);

const rejected = async (token: string): Promise<void> => {
  const http = await t.request("GET", "/api/threads", { token });
  expect(http.status).toBe(401);
  expect(http.body).toMatchObject({ error: { code: "unauthorized" } });
  const ws = await WsClient.connect(t.stack.wsUrl, token).then(
    () => null,
    (error: unknown) => error,
  );
  expect(ws).toBeInstanceOf(RefusedError);
  expect((ws as RefusedError).status).toBe(401);
};

describe("tokens", () => {
  it("accepts a valid HS256 token on HTTP and WebSocket connect", async () => {
    expect((await t.request("GET", "/api/threads", { token: alice })).status).toBe(200);
    const socket = await t.ws(alice);
    expect((await socket.request({ action: "ping" })).type).toBe("pong");
  });

  it("rejects an expired token", async () => {
    await rejected(
      await new SignJWT({})
        .setProtectedHeader({ alg: "HS256" })
        .setSubject("alice")
        .setIssuedAt(now() - 3600)
        .setExpirationTime(now() - 60)
        .sign(secret),
    );
  });

  it("rejects alg: none", async () => {
    await rejected(`${b64({ alg: "none", typ: "JWT" })}.${b64({ sub: "alice", exp: now() + 3600 })}.`);
  });

  it("rejects a token signed with an asymmetric key when the secret is configured", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    await rejected(
      await new SignJWT({})
        .setProtectedHeader({ alg: "RS256" })
        .setSubject("alice")
        .setExpirationTime("1h")
        .sign(privateKey),
    );
  });

  it("rejects a tampered token", async () => {
    const [header, , signature] = alice.split(".");
    await rejected(`${header}.${b64({ sub: "bob", exp: now() + 3600, roles: ["admin"] })}.${signature}`);
    await rejected(`${alice.slice(0, -4)}${alice.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`);
  });

  it("rejects tokens without a subject or an expiry", async () => {
    await rejected(
      await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h").sign(secret),
    );
    await rejected(
      await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").sign(secret),
    );
  });
});

describe("per-user rate limits", () => {
  it("answer 429 with Retry-After once a user's burst is spent, on HTTP and WebSocket", async () => {
    const user = await t.token("chatty");
    const thread = await t.createThread(user);
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<TestStack["request"]>> | undefined;
    for (let i = 0; i < 8 && limited === undefined; i++) {
      const res = await t.request("POST", `/api/threads/${thread.id}/messages`, {
        token: user,
        body: { message: `burst ${i}` },
      });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    // Burst 5: thread creation took one token, four messages fit, the next is refused.
    expect(statuses).toEqual([201, 201, 201, 201, 429]);
    expect(limited?.body).toMatchObject({ error: { code: "rate_limited" } });
    expect(Number(limited?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);

    const socket = await t.ws(user);
    expect(
      await socket.request({ action: "sendMessage", threadId: thread.id, message: "still?" }),
    ).toMatchObject({
      type: "error",
      code: "rate_limited",
    });

    // Other users and service principals are not affected.
    const someoneElse = await freshUser();
    const other = await t.createThread(someoneElse);
    expect(
      (
        await t.request("POST", `/api/threads/${other.id}/messages`, {
          token: someoneElse,
          body: { message: "me" },
        })
      ).status,
    ).toBe(201);
    const agent = await t.token("agent", ["service"]);
    for (let i = 0; i < 8; i++) {
      const res = await t.request("POST", `/api/threads/${thread.id}/messages`, {
        token: agent,
        body: { message: `agent ${i}` },
      });
      expect(res.status).toBe(201);
    }
  });
});

describe("payload limits", () => {
  it("never sends a WebSocket frame over 32 KB: a message too big for one is announced without its content", async () => {
    const alice = await freshUser();
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    // 8,000 control characters: 8 KB of content, ~48 KB once JSON-escaped (request and frame alike).
    const content = "\u0001".repeat(8_000);
    const res = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: content },
    });
    expect(res.status).toBe(201);
    const frame = await socket.next((f) => f.type === "message.created");
    expect(frame.truncated).toBe(true);
    expect(frame.message).toMatchObject({ id: res.body.id });
    expect((frame.message as Record<string, unknown>).content).toBeUndefined();
    const full = await t.request<{ content: string }>("GET", `/api/messages/${res.body.id}`, {
      token: alice,
    });
    expect(full.body.content).toBe(content);
    expect(t.stack.websocket.stats.largestFramePosted).toBeLessThanOrEqual(32 * 1024);
  });

  it("refuses an oversized WebSocket frame with an error event", async () => {
    const alice = await freshUser();
    const socket = await t.ws(alice);
    const thread = await t.createThread(alice);
    // A frame that big is not parsed at all, so the error cannot echo a request_id.
    socket.send({ action: "sendMessage", threadId: thread.id, message: "x".repeat(70_000) });
    const answer = await socket.next((f) => f.type === "error");
    expect(answer).toMatchObject({ type: "error", code: "payload_too_large" });
    await socket.barrier();
    expect(socket.messagesCreated()).toHaveLength(0);
  });
});

describe("hostile strings", () => {
  it("stores and returns SQL- and ClickHouse-looking content and metadata verbatim", async () => {
    const alice = await freshUser();
    const thread = await t.createThread(alice);
    const content = `'); DROP TABLE messages; -- \\' OR '1'='1 {id:String} $1 \\N \t "quoted" ${"`"}backtick${"`"} ' || '`;
    const metadata = {
      "key'with\"quotes": "value'); DELETE FROM threads; --",
      nested: { sql: "1; SELECT 1" },
    };
    const res = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: content, metadata },
    });
    expect(res.status).toBe(201);
    const read = await t.request<{ content: string; metadata: unknown }>(
      "GET",
      `/api/messages/${res.body.id}`,
      {
        token: alice,
      },
    );
    expect(read.body.content).toBe(content);
    expect(read.body.metadata).toEqual(metadata);

    await waitFor(async () => (await t.rowsInClickHouse(res.body.id)) === 1, { what: "archived" });
    const { rows } = await t.pg.query<{ content: string; metadata: unknown }>(
      "SELECT content, metadata FROM messages WHERE id = $1",
      [res.body.id],
    );
    expect(rows[0]?.content).toBe(content);
    expect(rows[0]?.metadata).toEqual(metadata);
    const archived = await t.clickhouse.query({
      query: `SELECT content, metadata FROM messages FINAL WHERE id = '${res.body.id}'`,
      format: "JSONEachRow",
    });
    const [row] = await archived.json<{ content: string; metadata: string }>();
    expect(row?.content).toBe(content);
    expect(JSON.parse(row?.metadata ?? "null")).toEqual(metadata);
    const threads = await t.request("GET", "/api/threads", { token: alice });
    expect(threads.status).toBe(200);
  });
});
