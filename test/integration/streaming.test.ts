/**
 * Assistant replies that stream, end to end against the local stack: an agent opens a reply,
 * appends deltas (HTTP and WebSocket), completes, errs or is stopped; subscribers get the deltas
 * live and in order; reads and a resumed subscription mid-stream show the content so far; the
 * final message reaches PostgreSQL and ClickHouse once, and no delta is a PostgreSQL write.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";
import type { Frame, WsClient } from "../support/ws-client.ts";

let t: TestStack;
let alice: string;
let bob: string;
let agent: string;

beforeAll(async () => {
  t = await startTestStack({ env: { STREAM_MAX_DELTAS: "40", STREAM_MAX_BYTES: "2000" } });
  alice = await t.token("alice");
  bob = await t.token("bob");
  agent = await t.token("assistant-bot", ["service"]);
});

afterAll(async () => {
  await t.stop();
});

interface WireMessage {
  id: string;
  seq: number;
  state: string;
  content: string;
  delta_index?: number;
  finish_reason: string | null;
  usage: Record<string, unknown> | null;
  error: Record<string, unknown> | null;
  first_delta_ms: number | null;
  duration_ms: number | null;
}

const open = async (threadId: string, extra: Record<string, unknown> = {}) => {
  const res = await t.request<WireMessage>("POST", `/api/threads/${threadId}/messages`, {
    token: agent,
    body: { role: "assistant", message: "", state: "streaming", ...extra },
  });
  expect(res.status).toBe(201);
  return res.body;
};

const append = (messageId: string, index: number, text: string, token = agent) =>
  t.request<Record<string, unknown>>("POST", `/api/messages/${messageId}/deltas`, {
    token,
    body: { index, text },
  });

const finish = (messageId: string, body: Record<string, unknown>, token = agent) =>
  t.request<WireMessage & { code?: string }>("POST", `/api/messages/${messageId}/complete`, { token, body });

const cancel = (messageId: string, token = alice) =>
  t.request<WireMessage & { code?: string }>("POST", `/api/messages/${messageId}/cancel`, { token });

const getMessage = async (messageId: string, token = alice) =>
  (await t.request<WireMessage>("GET", `/api/messages/${messageId}`, { token })).body;

const subscribed = async (threadId: string, extra: Record<string, unknown> = {}) => {
  const socket = await t.ws(alice);
  const answer = await socket.request({ action: "subscribe", threadId, ...extra });
  expect(answer.type).toBe("subscribed");
  return socket;
};

/** Applies delta frames as the README tells a client to: only the next index, in order. */
const deltasOf = (socket: WsClient, messageId: string): Frame[] =>
  socket.frames.filter((f) => f.type === "message.delta" && f.message_id === messageId);

const pgRow = async (messageId: string) =>
  (
    await t.pg.query<{ state: string; content: string; usage: unknown; finish_reason: string | null }>(
      "SELECT state, content, usage, finish_reason, first_delta_ms, duration_ms FROM messages WHERE id = $1",
      [messageId],
    )
  ).rows;

describe("a reply that streams", () => {
  it("opens, streams deltas live in order, completes once, and lands in PostgreSQL and ClickHouse in its final form", async () => {
    const thread = await t.createThread(alice);
    const socket = await subscribed(thread.id);
    const opened = await open(thread.id, { metadata: { agent: "demo" } });
    expect(opened).toMatchObject({ state: "streaming", content: "", role: "assistant", finish_reason: null });
    const created = await socket.next((f) => f.type === "message.created");
    expect(created.message).toMatchObject({ id: opened.id, state: "streaming" });

    const words = ["The ", "quick ", "brown ", "fox"];
    for (const [i, w] of words.entries()) {
      const res = await append(opened.id, i, w);
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ message_id: opened.id, index: i, duplicate: false });
    }
    await waitFor(() => deltasOf(socket, opened.id).length === words.length || undefined);
    expect(deltasOf(socket, opened.id).map((f) => [f.index, f.text])).toEqual(words.map((w, i) => [i, w]));

    // Reads mid-stream: the content so far and the last index in it.
    expect(await getMessage(opened.id)).toMatchObject({
      state: "streaming",
      content: "The quick brown fox",
      delta_index: 3,
    });
    const history = await t.request<{ messages: WireMessage[] }>(
      "GET",
      `/api/threads/${thread.id}/messages`,
      {
        token: alice,
      },
    );
    expect(history.body.messages.find((m) => m.id === opened.id)).toMatchObject({
      content: "The quick brown fox",
      delta_index: 3,
    });
    // Still nothing but the opened row in PostgreSQL: deltas are not PostgreSQL writes.
    await waitFor(async () => ((await pgRow(opened.id)).length === 1 ? true : undefined));
    expect(await pgRow(opened.id)).toEqual([expect.objectContaining({ state: "streaming", content: "" })]);

    const usage = { model: "demo-1", input_tokens: 12, output_tokens: 4 };
    const done = await finish(opened.id, { finish_reason: "stop", usage });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({
      id: opened.id,
      seq: opened.seq,
      state: "complete",
      content: "The quick brown fox",
      finish_reason: "stop",
      usage,
      metadata: { agent: "demo" },
    });
    expect(done.body.first_delta_ms).toBeGreaterThanOrEqual(0);
    expect(done.body.duration_ms).toBeGreaterThanOrEqual(done.body.first_delta_ms as number);
    const completed = await socket.next((f) => f.type === "message.completed");
    expect(completed.message).toEqual(done.body);

    // Repeating it is idempotent; appending after it is refused.
    const again = await finish(opened.id, { finish_reason: "stop", usage });
    expect(again).toMatchObject({ status: 200, body: done.body });
    const late = await append(opened.id, 4, "!");
    expect(late).toMatchObject({ status: 409, body: { error: { code: "message_not_streaming" } } });

    await waitFor(async () => ((await pgRow(opened.id))[0]?.state === "complete" ? true : undefined));
    expect(await pgRow(opened.id)).toEqual([
      expect.objectContaining({ content: "The quick brown fox", usage, finish_reason: "stop" }),
    ]);
    await waitFor(async () => ((await t.rowsInClickHouse(opened.id)) === 1 ? true : undefined));
    const archived = await t.clickhouse.query({
      query: `SELECT state, content, model, input_tokens, output_tokens FROM messages FINAL WHERE id = '${opened.id}'`,
      format: "JSONEachRow",
    });
    expect(await archived.json()).toEqual([
      {
        state: "complete",
        content: "The quick brown fox",
        model: "demo-1",
        input_tokens: "12",
        output_tokens: "4",
      },
    ]);
    expect(await getMessage(opened.id)).toEqual(done.body);
  });

  it("answers a repeated index as a duplicate and refuses one beyond the next", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    expect((await append(m.id, 0, "a")).status).toBe(202);
    expect(await append(m.id, 0, "a")).toMatchObject({ status: 202, body: { duplicate: true } });
    expect(await append(m.id, 2, "c")).toMatchObject({
      status: 409,
      body: { error: { code: "delta_out_of_order" } },
    });
    expect((await getMessage(m.id)).content).toBe("a");
  });

  it("resumes mid-stream: a new subscriber gets the content so far, then every later delta once", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    for (let i = 0; i < 3; i++) await append(m.id, i, `w${i} `);
    // A page reloaded mid-reply: subscribe again, catching up from before the reply.
    const socket = await subscribed(thread.id, { sinceSeq: 0 });
    const snapshot = socket.frames.find((f) => f.type === "message.snapshot");
    if (snapshot === undefined) throw new Error("no message.snapshot frame");
    expect(snapshot.message).toMatchObject({ id: m.id, content: "w0 w1 w2 ", delta_index: 2 });
    const replayed = socket.frames.find((f) => f.type === "message.created" && f.replay === true);
    expect(replayed?.message).toMatchObject({ id: m.id, content: "w0 w1 w2 ", delta_index: 2 });
    for (let i = 3; i < 6; i++) await append(m.id, i, `w${i} `);
    await waitFor(() => deltasOf(socket, m.id).length === 3 || undefined);
    let text = (snapshot.message as WireMessage).content;
    let last = (snapshot.message as WireMessage).delta_index as number;
    for (const f of deltasOf(socket, m.id)) {
      if (f.index !== last + 1) continue;
      text += f.text as string;
      last = f.index as number;
    }
    expect(deltasOf(socket, m.id).map((f) => f.index)).toEqual([3, 4, 5]);
    expect(text).toBe("w0 w1 w2 w3 w4 w5 ");
  });

  it("resumes from a stream position after the reply ended: the subscriber is sent the ending it missed", async () => {
    const thread = await t.createThread(alice);
    const first = await subscribed(thread.id);
    const m = await open(thread.id);
    const created = await first.next((f) => f.type === "message.created");
    await append(m.id, 0, "while ");
    await first.close();
    await append(m.id, 1, "away");
    const done = await finish(m.id, { finish_reason: "stop" });
    // The page comes back with the position it had: nothing new was made visible, but the reply ended.
    const again = await subscribed(thread.id, { epoch: created.epoch, pos: created.pos });
    const ending = again.frames.find((f) => f.type === "message.completed");
    expect(ending).toMatchObject({ replay: true, message: done.body });
    expect(again.frames.find((f) => f.type === "subscribed")).toMatchObject({ recovered: true, replayed: 0 });
  });

  it("streams deltas an agent sends over its WebSocket connection, acknowledged to the agent", async () => {
    const thread = await t.createThread(alice);
    const watcher = await subscribed(thread.id);
    const m = await open(thread.id);
    const agentSocket = await t.ws(agent);
    const ack = await agentSocket.request({ action: "appendDelta", messageId: m.id, index: 0, text: "hi" });
    expect(ack).toMatchObject({ type: "delta.accepted", message_id: m.id, index: 0, duplicate: false });
    const delta = await watcher.next((f) => f.type === "message.delta");
    expect(delta).toMatchObject({ message_id: m.id, thread_id: thread.id, index: 0, text: "hi" });
    const bad = await agentSocket.request({ action: "appendDelta", messageId: m.id, index: 5, text: "x" });
    expect(bad).toMatchObject({ type: "error", code: "delta_out_of_order" });
  });

  it("stops on the owner's cancel: cancelled with the content so far; the agent's next append and complete get 409", async () => {
    const thread = await t.createThread(alice);
    const socket = await subscribed(thread.id);
    const m = await open(thread.id);
    await append(m.id, 0, "partial ");
    expect((await cancel(m.id, bob)).status).toBe(404);
    const stopped = await cancel(m.id);
    expect(stopped).toMatchObject({
      status: 200,
      body: { state: "cancelled", content: "partial ", finish_reason: "cancelled" },
    });
    expect(await cancel(m.id)).toMatchObject({ status: 200, body: stopped.body });
    expect(await append(m.id, 1, "more")).toMatchObject({
      status: 409,
      body: { error: { code: "message_not_streaming" } },
    });
    expect(await finish(m.id, { finish_reason: "stop" })).toMatchObject({
      status: 409,
      body: { error: { code: "message_not_streaming" } },
    });
    const frame = await socket.next((f) => f.type === "message.cancelled");
    expect(frame.message).toEqual(stopped.body);
    await waitFor(async () => ((await pgRow(m.id))[0]?.state === "cancelled" ? true : undefined));
    await waitFor(async () => ((await t.rowsInClickHouse(m.id)) === 1 ? true : undefined));
  });

  it("ends in error with the partial content kept", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    await append(m.id, 0, "so far");
    const failed = await finish(m.id, {
      finish_reason: "error",
      error: { code: "upstream", message: "model down" },
    });
    expect(failed).toMatchObject({
      status: 200,
      body: { state: "error", content: "so far", error: { code: "upstream", message: "model down" } },
    });
    await waitFor(async () => ((await pgRow(m.id))[0]?.state === "error" ? true : undefined));
  });

  it("takes the agent's full text at completion over the deltas joined", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    await append(m.id, 0, "draft");
    const done = await finish(m.id, { finish_reason: "stop", content: "final text" });
    expect(done.body).toMatchObject({ state: "complete", content: "final text" });
  });
});

describe("bad input and roles", () => {
  it("lets only a service principal open, append or complete; anyone else gets 403", async () => {
    const thread = await t.createThread(alice);
    const refused = await t.request("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: "", state: "streaming" },
    });
    expect(refused).toMatchObject({ status: 403, body: { error: { code: "role_not_allowed" } } });
    const m = await open(thread.id);
    expect(await append(m.id, 0, "x", alice)).toMatchObject({
      status: 403,
      body: { error: { code: "role_not_allowed" } },
    });
    expect(await finish(m.id, { finish_reason: "stop" }, alice)).toMatchObject({
      status: 403,
      body: { error: { code: "role_not_allowed" } },
    });
  });

  it("refuses a delta over its size limit, and a stream over its budget, appending nothing", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    expect(await append(m.id, 0, "x".repeat(5000))).toMatchObject({
      status: 413,
      body: { error: { code: "delta_too_large" } },
    });
    for (let i = 0; i < 40; i++) expect((await append(m.id, i, "y")).status).toBe(202);
    expect(await append(m.id, 40, "y")).toMatchObject({
      status: 413,
      body: { error: { code: "stream_too_large" } },
    });
    expect((await getMessage(m.id)).content).toBe("y".repeat(40));
    expect(await finish(m.id, { finish_reason: "stop", content: "z".repeat(2001) })).toMatchObject({
      status: 413,
      body: { error: { code: "stream_too_large" } },
    });
  });

  it("refuses malformed deltas and completions with 422, reserved finish reasons included", async () => {
    const thread = await t.createThread(alice);
    const m = await open(thread.id);
    for (const body of [
      {},
      { index: -1, text: "a" },
      { index: 0 },
      { index: 0, text: 5 },
      { index: 0, text: "a", x: 1 },
    ]) {
      const res = await t.request("POST", `/api/messages/${m.id}/deltas`, { token: agent, body });
      expect(res).toMatchObject({ status: 422, body: { error: { code: "validation_failed" } } });
    }
    for (const body of [
      {},
      { finish_reason: "timeout" },
      { finish_reason: "cancelled" },
      { finish_reason: "Stop!" },
    ]) {
      expect(await finish(m.id, body)).toMatchObject({
        status: 422,
        body: { error: { code: "validation_failed" } },
      });
    }
    expect((await append("00000000-0000-4000-8000-000000000000", 0, "a")).status).toBe(404);
  });

  it("refuses deltas to a message posted whole", async () => {
    const thread = await t.createThread(alice);
    const res = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
      token: agent,
      body: { message: "whole" },
    });
    expect(await append(res.body.id, 0, "x")).toMatchObject({
      status: 409,
      body: { error: { code: "message_not_streaming" } },
    });
  });
});
