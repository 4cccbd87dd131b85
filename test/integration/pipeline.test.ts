/**
 * The accept path end to end: HTTP → Redis + SQS → WebSocket fan-out → PostgreSQL → ClickHouse,
 * through the local stack and real servers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

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

const messagesInThread = async (threadId: string): Promise<number> => {
  const { rows } = await t.pg.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
    [threadId],
  );
  return rows[0]?.n ?? 0;
};

describe("a message posted over HTTP", () => {
  it("is answered 201, pushed to the thread's subscribers only, readable at once, then stored exactly once in PostgreSQL and ClickHouse", async () => {
    const aliceThread = await t.createThread(alice, { title: "alice's" });
    const bobThread = await t.createThread(bob, { title: "bob's" });
    const aliceSocket = await t.ws(alice);
    const bobSocket = await t.ws(bob);
    expect((await aliceSocket.request({ action: "subscribe", threadId: aliceThread.id })).type).toBe(
      "subscribed",
    );
    expect((await bobSocket.request({ action: "subscribe", threadId: bobThread.id })).type).toBe(
      "subscribed",
    );

    const res = await t.request("POST", `/api/threads/${aliceThread.id}/messages`, {
      token: alice,
      body: { message: "hello, world", metadata: { source: "test" } },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      thread_id: aliceThread.id,
      role: "user",
      user_id: "alice",
      content: "hello, world",
      metadata: { source: "test" },
      durability: "queued",
      cache: "written",
      delivered: 1,
    });
    const message = res.body as { id: string; seq: number; created_at: number; created_at_ms: number };
    expect(Number.isSafeInteger(message.seq)).toBe(true);
    expect(message.created_at).toBe(Math.floor(message.created_at_ms / 1000));
    expect(res.headers.get("server-timing")).toMatch(/sqs;dur=[\d.]+/);

    const pushed = await aliceSocket.next((f) => f.type === "message.created");
    expect(pushed.message).toMatchObject({ id: message.id, seq: message.seq, content: "hello, world" });

    // Fan-out finishes before the 201: once bob's connection answers a ping, nothing more is coming.
    await bobSocket.barrier();
    expect(bobSocket.messagesCreated()).toHaveLength(0);

    const read = await t.request("GET", `/api/messages/${message.id}`, { token: alice });
    expect(read.status).toBe(200);
    expect(read.headers.get("x-served-from")).toBe("cache");
    expect(read.body).toMatchObject({ id: message.id, seq: message.seq, content: "hello, world" });

    await waitFor(async () => (await t.rowsInPostgres(message.id)) === 1, { what: "row in PostgreSQL" });
    await waitFor(async () => (await t.rowsInClickHouse(message.id)) === 1, { what: "row in ClickHouse" });
    expect(await t.rowsInPostgres(message.id)).toBe(1);
    expect(await messagesInThread(bobThread.id)).toBe(0);
  });

  it("pages history in seq order from the cache, with cursors in both directions", async () => {
    const thread = await t.createThread(alice);
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await t.request<{ seq: number }>("POST", `/api/threads/${thread.id}/messages`, {
        token: alice,
        body: { message: `m${i}` },
      });
      expect(res.status).toBe(201);
      seqs.push(res.body.seq);
    }
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

    // First read of the newest page fills the cache from PostgreSQL once everything is persisted.
    await waitFor(async () => (await messagesInThread(thread.id)) === 5, { what: "5 rows persisted" });
    const first = await t.request<{ messages: { content: string }[]; next_cursor: number | null }>(
      "GET",
      `/api/threads/${thread.id}/messages?limit=5`,
      { token: alice },
    );
    expect(first.body.messages.map((m) => m.content)).toEqual(["m0", "m1", "m2", "m3", "m4"]);

    const newest = await t.request<{ messages: { content: string }[]; next_cursor: number | null }>(
      "GET",
      `/api/threads/${thread.id}/messages?limit=2`,
      { token: alice },
    );
    expect(newest.headers.get("x-served-from")).toBe("cache");
    expect(newest.body.messages.map((m) => m.content)).toEqual(["m3", "m4"]);
    expect(newest.body.next_cursor).toBe(seqs[3]);

    const older = await t.request<{ messages: { content: string }[]; next_cursor: number | null }>(
      "GET",
      `/api/threads/${thread.id}/messages?limit=2&before=${newest.body.next_cursor}`,
      { token: alice },
    );
    expect(older.body.messages.map((m) => m.content)).toEqual(["m1", "m2"]);

    const forward = await t.request<{ messages: { content: string }[]; next_cursor: number | null }>(
      "GET",
      `/api/threads/${thread.id}/messages?after=${seqs[2]}`,
      { token: alice },
    );
    expect(forward.body.messages.map((m) => m.content)).toEqual(["m3", "m4"]);
    expect(forward.body.next_cursor).toBeNull();

    const details = await t.request("GET", `/api/threads/${thread.id}`, { token: alice });
    expect(details.body).toMatchObject({ id: thread.id, owner_id: "alice", message_count: 5 });
  });
});

describe("any Unicode text", () => {
  it("travels the queued path and is stored verbatim: emoji, noncharacters, right-to-left, combining marks", async () => {
    const thread = await t.createThread(alice);
    const content = "héllo 👋🏽 \u{1F9D1}\u200D\u{1F4BB} \ufffe\uffff שלום e\u0301 \u0001\u001f";
    const res = await t.request<{ id: string; durability: string; degraded: boolean }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      { token: alice, body: { message: content, metadata: { "emoji 🔑": "🗝️" } } },
    );
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ durability: "queued", degraded: false });
    await waitFor(async () => (await t.rowsInClickHouse(res.body.id)) === 1, { what: "archived" });
    const { rows } = await t.pg.query<{ content: string; metadata: unknown }>(
      "SELECT content, metadata FROM messages WHERE id = $1",
      [res.body.id],
    );
    expect(rows[0]).toEqual({ content, metadata: { "emoji 🔑": "🗝️" } });
  });
});

describe("a retry with the same client_message_id", () => {
  it("returns the original message and adds nothing anywhere", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });

    const first = await t.request<{ id: string; seq: number }>("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: "once", client_message_id: "client-1" },
    });
    expect(first.status).toBe(201);
    await waitFor(async () => (await t.rowsInClickHouse(first.body.id)) === 1, { what: "archived" });
    const recordsBefore = t.stack.eventSources.persist.stats.records;

    const retry = await t.request<{ id: string; seq: number; replayed: boolean }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      { token: alice, body: { message: "once", client_message_id: "client-1" } },
    );
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body).toMatchObject({ id: first.body.id, seq: first.body.seq, replayed: true });

    const viaHeader = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: "once" },
      headers: { "idempotency-key": "client-1" },
    });
    expect(viaHeader.body.id).toBe(first.body.id);

    await socket.barrier();
    expect(socket.messagesCreated()).toHaveLength(1);
    expect(t.stack.eventSources.persist.stats.records).toBe(recordsBefore);
    expect(await messagesInThread(thread.id)).toBe(1);
    expect(await t.rowsInPostgres(first.body.id)).toBe(1);
    expect(await t.rowsInClickHouse(first.body.id)).toBe(1);
    const cached = await t.request<{ messages: unknown[] }>("GET", `/api/threads/${thread.id}/messages`, {
      token: alice,
    });
    expect(cached.body.messages).toHaveLength(1);
  });
});

describe("a message sent without a key", () => {
  it("is answered with the key the server made up, and sending that key again is a replay", async () => {
    const thread = await t.createThread(alice);
    const first = await t.request<{ id: string; seq: number; client_message_id: string }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      { token: alice, body: { message: "no key" } },
    );
    expect(first.status).toBe(201);
    expect(first.body.client_message_id).toMatch(/^srv:/);
    const again = await t.request<{ id: string; seq: number; replayed: boolean }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      { token: alice, body: { message: "no key", client_message_id: first.body.client_message_id } },
    );
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ id: first.body.id, seq: first.body.seq, replayed: true });
    const page = await t.request<{ messages: unknown[] }>("GET", `/api/threads/${thread.id}/messages`, {
      token: alice,
    });
    expect(page.body.messages).toHaveLength(1);
  });
});

describe("a service principal", () => {
  it("posts an assistant message into a user's thread, and the user's subscribed client receives it", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });
    const agent = await t.token("assistant-agent", ["service"]);

    const res = await t.request("POST", `/api/threads/${thread.id}/messages`, {
      token: agent,
      body: { message: "Here is my answer.", role: "assistant" },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ role: "assistant", user_id: "assistant-agent" });
    const pushed = await socket.next((f) => f.type === "message.created");
    expect(pushed.message).toMatchObject({ role: "assistant", content: "Here is my answer." });
  });

  it("is the only one that may post assistant or system messages", async () => {
    const thread = await t.createThread(alice);
    const res = await t.request("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: "pretending", role: "assistant" },
    });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: { code: "role_not_allowed" } });
    expect(await messagesInThread(thread.id)).toBe(0);
  });
});

describe("health", () => {
  it("answers machines without a token with the overall status only", async () => {
    const anonymous = await t.request("GET", "/api/health");
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toEqual({ status: "ok" });
    const user = await t.request("GET", "/api/health", { token: alice });
    expect(user.body).toEqual({ status: "ok" });
  });

  it("reports each tier up with its latency to an admin", async () => {
    const admin = await t.token("ops", ["admin"]);
    const res = await t.request<{
      status: string;
      tiers: Record<string, { status: string; latency_ms: number }>;
    }>("GET", "/api/health", { token: admin });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe("ok");
    for (const tier of ["redis", "sqs", "postgres", "clickhouse"]) {
      expect(res.body.tiers[tier]?.status).toBe("ok");
      expect(res.body.tiers[tier]?.latency_ms).toBeGreaterThanOrEqual(0);
    }
  });
});
