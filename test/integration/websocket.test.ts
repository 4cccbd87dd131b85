/** The WebSocket API: connect, subscribe with catch-up, sendMessage, errors, gone connections. */
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_JWT_SECRET } from "../support/test-env.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";
import { RefusedError, WsClient } from "../support/ws-client.ts";

let t: TestStack;
let alice: string;
let bob: string;

beforeAll(async () => {
  t = await startTestStack();
  alice = await t.token("alice");
  bob = await t.token("bob");
});

afterAll(async () => {
  await t.stop();
});

const post = async (token: string, threadId: string, message: string) => {
  const res = await t.request<{ id: string; seq: number }>("POST", `/api/threads/${threadId}/messages`, {
    token,
    body: { message },
  });
  expect(res.status).toBe(201);
  return res.body;
};

describe("$connect", () => {
  it("refuses a connection without a token, or with a bad one, with 401", async () => {
    for (const token of [undefined, "not-a-jwt", `${alice}x`]) {
      const refused = await WsClient.connect(t.stack.wsUrl, token).then(
        () => null,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(RefusedError);
      expect((refused as RefusedError).status).toBe(401);
    }
  });
});

describe("subscribe", () => {
  it("replays exactly the messages after sinceSeq, in order, then delivers live ones", async () => {
    const thread = await t.createThread(alice);
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await post(alice, thread.id, `m${i}`));

    const socket = await t.ws(alice);
    const subscribed = await socket.request({
      action: "subscribe",
      threadId: thread.id,
      sinceSeq: sent[1]?.seq,
    });
    expect(subscribed).toMatchObject({
      type: "subscribed",
      threadId: thread.id,
      replayed: 3,
      has_more: false,
    });
    const replayed = socket
      .messagesCreated()
      .map((f) => (f.message as { seq: number; content: string }).content);
    expect(replayed).toEqual(["m2", "m3", "m4"]);
    expect(socket.messagesCreated().every((f) => f.replay === true)).toBe(true);

    const live = await post(alice, thread.id, "live");
    const pushed = await socket.next((f) => f.type === "message.created" && f.replay === undefined);
    expect(pushed.message).toMatchObject({ id: live.id, content: "live" });
  });

  it("refuses another user's thread as if it did not exist", async () => {
    const bobsThread = await t.createThread(bob);
    const socket = await t.ws(alice);
    const answer = await socket.request({ action: "subscribe", threadId: bobsThread.id });
    expect(answer).toMatchObject({ type: "error", code: "thread_not_found" });
    await post(bob, bobsThread.id, "private");
    await socket.barrier();
    expect(socket.messagesCreated()).toHaveLength(0);
  });

  it("stops after unsubscribe", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    expect(await socket.request({ action: "unsubscribe", threadId: thread.id })).toMatchObject({
      type: "unsubscribed",
    });
    await post(alice, thread.id, "after unsubscribe");
    await socket.barrier();
    expect(socket.messagesCreated()).toHaveLength(0);
  });
});

describe("sendMessage", () => {
  it("follows the accept path: ack to the sender, fan-out to other subscribers, stored once, idempotent", async () => {
    const thread = await t.createThread(alice);
    const sender = await t.ws(alice);
    const otherTab = await t.ws(alice);
    await sender.request({ action: "subscribe", threadId: thread.id });
    await otherTab.request({ action: "subscribe", threadId: thread.id });

    const ack = await sender.request({
      action: "sendMessage",
      threadId: thread.id,
      message: "over the socket",
      client_message_id: "ws-1",
    });
    expect(ack).toMatchObject({ type: "message.created", ack: true, durability: "queued", replayed: false });
    const message = ack.message as { id: string; seq: number };
    const pushed = await otherTab.next((f) => f.type === "message.created");
    expect(pushed.message).toMatchObject({ id: message.id, content: "over the socket" });
    await sender.barrier();
    expect(sender.messagesCreated()).toHaveLength(1);

    const again = await sender.request({
      action: "sendMessage",
      threadId: thread.id,
      message: "over the socket",
      client_message_id: "ws-1",
    });
    expect(again).toMatchObject({ type: "message.created", replayed: true });
    expect(again.message).toMatchObject({ id: message.id, seq: message.seq });
    await otherTab.barrier();
    expect(otherTab.messagesCreated()).toHaveLength(1);

    await waitFor(async () => (await t.rowsInClickHouse(message.id)) === 1, { what: "archived" });
    expect(await t.rowsInPostgres(message.id)).toBe(1);
  });

  it("answers bad frames with error events and writes nothing", async () => {
    const thread = await t.createThread(alice);
    const bobsThread = await t.createThread(bob);
    const socket = await t.ws(alice);
    const cases: [Record<string, unknown>, string][] = [
      [{ action: "sendMessage", threadId: thread.id, message: "" }, "validation_failed"],
      [{ action: "sendMessage", threadId: thread.id, message: "x", extra: 1 }, "validation_failed"],
      [{ action: "sendMessage", threadId: "not-a-uuid", message: "x" }, "invalid_id"],
      [{ action: "sendMessage", threadId: thread.id, message: "x".repeat(20_000) }, "message_too_large"],
      [{ action: "sendMessage", threadId: bobsThread.id, message: "intrusion" }, "thread_not_found"],
      [{ action: "subscribe" }, "validation_failed"],
      [{ action: "no-such-action" }, "unknown_action"],
    ];
    for (const [frame, code] of cases) {
      expect(await socket.request(frame)).toMatchObject({ type: "error", code });
    }
    socket.sendRaw("{not json");
    expect(await socket.next((f) => f.type === "error" && f.code === "malformed_json")).toBeTruthy();

    const recordsBefore = t.stack.eventSources.persist.stats.records;
    const { rows } = await t.pg.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM messages WHERE thread_id = ANY($1::uuid[])",
      [[thread.id, bobsThread.id]],
    );
    expect(rows[0]?.n).toBe(0);
    expect(t.stack.eventSources.persist.stats.records).toBe(recordsBefore);
  });
});

describe("fan-out", () => {
  it("removes a connection that API Gateway reports gone (410)", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    // A subscription left behind by a connection that is gone without a $disconnect.
    const subscribers = `${t.redisPrefix}{t:${thread.id}}:subs`;
    await t.redis.sadd(subscribers, "Z29uZS1jb25uZWN0aW9u=");

    const res = await t.request<{ delivered: number }>("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: "who is still here?" },
    });
    expect(res.status).toBe(201);
    expect(res.body.delivered).toBe(1);
    expect(await t.redis.sismember(subscribers, "Z29uZS1jb25uZWN0aW9u=")).toBe(0);
    expect(await t.redis.smembers(subscribers)).toHaveLength(1);
  });

  it("forgets a connection's subscriptions on $disconnect", async () => {
    const thread = await t.createThread(alice);
    const socket = await WsClient.connect(t.stack.wsUrl, alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    const subscribers = `${t.redisPrefix}{t:${thread.id}}:subs`;
    expect(await t.redis.scard(subscribers)).toBe(1);
    await socket.close();
    await waitFor(async () => (await t.redis.scard(subscribers)) === 0, { what: "subscription removed" });
  });
});

describe("the local API Gateway's limits", () => {
  it("@connections refuses a frame over 128 KB with 413 PayloadTooLargeException", async () => {
    const res = await fetch(`${t.stack.managementEndpoint}/@connections/${encodeURIComponent("any-id")}`, {
      method: "POST",
      body: "x".repeat(200 * 1024),
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("x-amzn-errortype")).toBe("PayloadTooLargeException");
  });

  it("the HTTP API refuses a request body over 6 MB with 413", async () => {
    const res = await fetch(`${t.stack.httpUrl}/api/threads`, {
      method: "POST",
      headers: { authorization: `Bearer ${alice}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "x".repeat(7 * 1024 * 1024) }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ message: "Request Entity Too Large" });
  });
});

describe("a connection whose token expires", () => {
  it("is refused any further action with token_expired, and closed by the server", async () => {
    const secret = new TextEncoder().encode(TEST_JWT_SECRET);
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("short-lived")
      .setExpirationTime(expiresAt)
      .sign(secret);
    const socket = await t.ws(token);
    expect(await socket.request({ action: "ping" })).toMatchObject({ type: "pong" });
    // Once the token's expiry has passed, the next action is refused and the server closes.
    const refused = await waitFor(
      async () => {
        const answer = await socket.request({ action: "ping" });
        return answer.type === "error" ? answer : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: "the expired connection refused" },
    );
    expect(refused).toMatchObject({ type: "error", code: "token_expired" });
    await socket.closed();
  });
});
