/**
 * The demo agent against the local stack, through the public API only: it finds the threads that
 * ask for it (`GET /api/threads?agent=demo`, service principals only), answers each new user
 * message once with a reply streamed word by word, leaves other threads and older messages alone,
 * and stops when the user presses stop.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { composeReply, DemoAgent } from "../../scripts/local-stack/demo-agent.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";
import type { Frame, WsClient } from "../support/ws-client.ts";

interface WireMessage {
  id: string;
  thread_id: string;
  role: string;
  content: string;
  state: string;
  client_message_id: string | null;
  metadata: Record<string, unknown>;
  finish_reason: string | null;
  usage: Record<string, unknown> | null;
}

let t: TestStack;
let alice: string;
let bob: string;
let service: string;
const agents: DemoAgent[] = [];

/** An agent at a fast pace (the default is 20-40 words per second after a short pause). */
const startAgent = async (wordsPerSecond: readonly [number, number] = [2000, 4000]): Promise<DemoAgent> => {
  const agent = new DemoAgent({
    apiUrl: `${t.stack.httpUrl}/api`,
    wsUrl: t.stack.wsUrl,
    token: () => t.token("demo-agent", ["service"]),
    wordsPerSecond,
    firstWordDelayMs: [0, 0],
    pollIntervalMs: 100,
  });
  agents.push(agent);
  await agent.start();
  return agent;
};

/** A thread that asks for the demo agent, watched by its owner over the WebSocket API. */
const demoThread = async (): Promise<{ threadId: string; socket: WsClient }> => {
  const thread = await t.createThread(alice, { title: "demo", metadata: { agent: "demo" } });
  const socket = await t.ws(alice);
  expect(await socket.request({ action: "subscribe", threadId: thread.id })).toMatchObject({
    type: "subscribed",
  });
  return { threadId: thread.id, socket };
};

const ask = async (threadId: string, message: string): Promise<WireMessage> => {
  const res = await t.request<WireMessage>("POST", `/api/threads/${threadId}/messages`, {
    token: alice,
    body: { message },
  });
  expect(res.status).toBe(201);
  return res.body;
};

const history = async (threadId: string): Promise<WireMessage[]> => {
  const res = await t.request<{ messages: WireMessage[] }>("GET", `/api/threads/${threadId}/messages`, {
    token: alice,
  });
  expect(res.status).toBe(200);
  return res.body.messages;
};

/** The reply to a question, as its `message.created` frame announced it. */
const replyCreated = (socket: WsClient, questionId: string): Promise<Frame> =>
  socket.next(
    (f) =>
      f.type === "message.created" &&
      (f.message as WireMessage).metadata.in_reply_to === questionId &&
      (f.message as WireMessage).role === "assistant",
  );

const deltasOf = (socket: WsClient, messageId: string): Frame[] =>
  socket.frames.filter((f) => f.type === "message.delta" && f.message_id === messageId);

beforeAll(async () => {
  t = await startTestStack();
  alice = await t.token("alice");
  bob = await t.token("bob");
  service = await t.token("demo-agent", ["service"]);
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await t.stop();
});

describe("finding the threads an agent answers", () => {
  it("lists every owner's threads that name the agent, newest first, for service principals only", async () => {
    const a = await t.createThread(alice, { metadata: { agent: "finder" } });
    const b = await t.createThread(bob, { metadata: { agent: "finder", topic: "x" } });
    await t.createThread(alice, { metadata: { agent: "someone-else" } });
    await t.createThread(alice);

    const listed = await t.request<{ threads: { id: string }[]; next_cursor: string | null }>(
      "GET",
      "/api/threads?agent=finder&limit=1",
      { token: service },
    );
    expect(listed.status).toBe(200);
    expect(listed.body.threads.map((x) => x.id)).toEqual([b.id]);
    const rest = await t.request<{ threads: { id: string }[]; next_cursor: string | null }>(
      "GET",
      `/api/threads?agent=finder&limit=1&cursor=${listed.body.next_cursor}`,
      { token: service },
    );
    expect(rest.body.threads.map((x) => x.id)).toEqual([a.id]);

    const refused = await t.request("GET", "/api/threads?agent=finder", { token: alice });
    expect(refused).toMatchObject({ status: 403, body: { error: { code: "role_not_allowed" } } });
    const admin = await t.request("GET", "/api/threads?agent=finder", {
      token: await t.token("root", ["admin"]),
    });
    expect(admin).toMatchObject({ status: 403, body: { error: { code: "role_not_allowed" } } });
    // Users still list their own threads.
    const own = await t.request<{ threads: { id: string }[] }>("GET", "/api/threads", { token: bob });
    expect(own.body.threads.map((x) => x.id)).toEqual([b.id]);
  });
});

describe("the demo agent", () => {
  let agent: DemoAgent;
  let before: { threadId: string; questionId: string };

  beforeAll(async () => {
    // A question asked before the agent started: history, not something to answer.
    const { threadId } = await demoThread();
    before = { threadId, questionId: (await ask(threadId, "Anyone there?")).id };
    agent = await startAgent();
  });

  it("answers a new user message with a reply streamed word by word, stored complete", async () => {
    const { threadId, socket } = await demoThread();
    const question = await ask(threadId, "Where should we go this summer?");

    const created = await replyCreated(socket, question.id);
    const reply = created.message as WireMessage;
    expect(reply).toMatchObject({
      role: "assistant",
      state: "streaming",
      content: "",
      client_message_id: `demo-reply:${question.id}`,
      metadata: { agent: "demo", in_reply_to: question.id },
    });
    const completed = await socket.next(
      (f) => f.type === "message.completed" && (f.message as WireMessage).id === reply.id,
    );
    await socket.barrier();

    // Applied as the README says: each delta's index is the next one.
    const deltas = deltasOf(socket, reply.id);
    expect(deltas.map((d) => d.index)).toEqual(deltas.map((_, i) => i));
    const streamed = deltas.map((d) => d.text as string).join("");
    const expected = composeReply(question.content, question.id);
    expect(streamed).toBe(expected);
    expect(deltas.length).toBe(expected.split(" ").length);
    const words = expected.split(" ").length;
    expect(completed.message).toMatchObject({
      id: reply.id,
      state: "complete",
      content: streamed,
      finish_reason: "stop",
      usage: { model: "demo-1", input_tokens: 6, output_tokens: words },
    });

    const stored = await history(threadId);
    expect(stored.map((m) => [m.id, m.role, m.state])).toEqual([
      [question.id, "user", "complete"],
      [reply.id, "assistant", "complete"],
    ]);
    expect(stored[1]?.content).toBe(streamed);
    expect(agent.replies.get(question.id)).toMatchObject({ outcome: "complete", deltas: words });
  });

  it("leaves threads that do not ask for it, and messages from before it started", async () => {
    const plain = await t.createThread(alice, { title: "no agent" });
    const unanswered = await ask(plain.id, "Is anybody listening here?");
    // The thread that asked before the agent started gets a reply to its new question only.
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: before.threadId });
    const question = await ask(before.threadId, "And now?");
    const reply = (await replyCreated(socket, question.id)).message as WireMessage;
    await socket.next((f) => f.type === "message.completed" && (f.message as WireMessage).id === reply.id);

    expect((await history(before.threadId)).map((m) => m.id)).toEqual([
      before.questionId,
      question.id,
      reply.id,
    ]);
    expect(agent.replies.has(before.questionId)).toBe(false);
    expect(agent.threads).toContain(before.threadId);
    expect(agent.threads).not.toContain(plain.id);
    expect((await history(plain.id)).map((m) => m.id)).toEqual([unanswered.id]);
    expect(agent.replies.has(unanswered.id)).toBe(false);
  });

  it("answers once when two runs of the agent see the same message", async () => {
    const second = await startAgent();
    const { threadId, socket } = await demoThread();
    const question = await ask(threadId, "Two agents, one answer?");
    await waitFor(
      () =>
        (agent.replies.get(question.id)?.outcome !== undefined &&
          second.replies.get(question.id)?.outcome !== undefined) ||
        undefined,
      { what: "both agents done with the question" },
    );
    const outcomes = [agent, second].map((a) => a.replies.get(question.id)?.outcome).sort();
    expect(outcomes).toEqual(["complete", "exists"]);
    await socket.next((f) => f.type === "message.completed");
    const stored = await history(threadId);
    expect(stored.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(stored[1]).toMatchObject({ state: "complete", client_message_id: `demo-reply:${question.id}` });
    await second.stop();
  });

  it("reconnects when its connection drops and answers what was asked meanwhile", async () => {
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: before.threadId });
    agent.drop();
    const question = await ask(before.threadId, "Still there after the drop?");
    const reply = (await replyCreated(socket, question.id)).message as WireMessage;
    const completed = await socket.next(
      (f) => f.type === "message.completed" && (f.message as WireMessage).id === reply.id,
    );
    expect(completed.message).toMatchObject({
      content: composeReply(question.content, question.id),
      client_message_id: `demo-reply:${question.id}`,
    });
  });

  it("stops when the user presses stop: the reply ends cancelled with what it had said", async () => {
    // A slow agent of its own, so that the reply is still streaming when the user stops it.
    await agent.stop();
    const slow = await startAgent([20, 20]);
    const { threadId, socket } = await demoThread();
    const question = await ask(threadId, "Tell me a long story, please.");
    const reply = (await replyCreated(socket, question.id)).message as WireMessage;
    await waitFor(() => deltasOf(socket, reply.id).length >= 2 || undefined, { what: "two deltas" });

    const stopped = await t.request<WireMessage>("POST", `/api/messages/${reply.id}/cancel`, {
      token: alice,
    });
    expect(stopped).toMatchObject({ status: 200, body: { state: "cancelled", finish_reason: "cancelled" } });
    await waitFor(() => slow.replies.get(question.id)?.outcome, { what: "the agent to stop" });
    expect(slow.replies.get(question.id)?.outcome).toBe("stopped");

    await socket.next((f) => f.type === "message.cancelled" && (f.message as WireMessage).id === reply.id);
    await socket.barrier();
    expect(socket.frames.some((f) => f.type === "message.completed")).toBe(false);
    const said = deltasOf(socket, reply.id)
      .map((d) => d.text as string)
      .join("");
    expect(stopped.body.content).toBe(said);
    expect((await history(threadId)).at(-1)).toMatchObject({
      id: reply.id,
      state: "cancelled",
      content: said,
    });
    // It said less than the whole reply, and nothing after the stop.
    expect(said.length).toBeLessThan(composeReply(question.content, question.id).length);
    expect(slow.replies.get(question.id)?.deltas).toBe(deltasOf(socket, reply.id).length);
  });
});
