/**
 * A thread's life after its creation, against the local stack: renamed and re-described (by its
 * owner, or titled by an agent), archived and listed apart, and exported whole.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";

let t: TestStack;
let alice: string;
let bob: string;
let agent: string;

beforeAll(async () => {
  t = await startTestStack({ env: { RATE_LIMIT_PER_SECOND: "0" } });
  alice = await t.token("alice");
  bob = await t.token("bob");
  agent = await t.token("title-bot", ["service"]);
});

afterAll(async () => {
  await t.stop();
});

interface WireThread {
  id: string;
  title: string | null;
  metadata: Record<string, unknown>;
  archived: boolean;
  archived_at_ms?: number;
}

const patch = (threadId: string, body: unknown, token = alice) =>
  t.request<WireThread & { error?: { code: string } }>("PATCH", `/api/threads/${threadId}`, { token, body });

const list = async (query = "") =>
  (
    await t.request<{ threads: WireThread[] }>("GET", `/api/threads${query}`, { token: alice })
  ).body.threads.map((x) => x.id);

describe("PATCH /api/threads/{id}", () => {
  it("renames and re-describes a thread, tells its subscribers, and reads show the change", async () => {
    const thread = await t.createThread(alice, { title: "draft", metadata: { a: 1 } });
    expect(thread).toMatchObject({ archived: false });
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });

    const renamed = await patch(thread.id, { title: "Trip to Lisbon", metadata: { topic: "travel" } });
    expect(renamed).toMatchObject({
      status: 200,
      body: { id: thread.id, title: "Trip to Lisbon", metadata: { topic: "travel" }, archived: false },
    });
    const frame = await socket.next((f) => f.type === "thread.updated");
    expect(frame.thread).toEqual(renamed.body);
    const read = await t.request<WireThread>("GET", `/api/threads/${thread.id}`, { token: alice });
    expect(read.body).toMatchObject({ title: "Trip to Lisbon", metadata: { topic: "travel" } });
  });

  it("lets an agent title a thread, but not archive it; hides the thread from other users", async () => {
    const thread = await t.createThread(alice);
    expect(await patch(thread.id, { title: "Named by the agent" }, agent)).toMatchObject({
      status: 200,
      body: { title: "Named by the agent" },
    });
    expect(await patch(thread.id, { archived: true }, agent)).toMatchObject({
      status: 403,
      body: { error: { code: "role_not_allowed" } },
    });
    expect(await patch(thread.id, { title: "mine now" }, bob)).toMatchObject({
      status: 404,
      body: { error: { code: "thread_not_found" } },
    });
  });

  it("refuses an empty or malformed change with 422", async () => {
    const thread = await t.createThread(alice);
    for (const body of [{}, { title: 5 }, { archived: "yes" }, { other: 1 }, { title: "x".repeat(201) }]) {
      expect(await patch(thread.id, body)).toMatchObject({
        status: 422,
        body: { error: { code: "validation_failed" } },
      });
    }
  });
});

describe("archived threads", () => {
  it("leave the list unless asked for, stay readable and writable, and come back when unarchived", async () => {
    const kept = await t.createThread(alice);
    const shelved = await t.createThread(alice);
    const archived = await patch(shelved.id, { archived: true });
    expect(archived.body).toMatchObject({ archived: true });
    expect(archived.body.archived_at_ms).toBeGreaterThan(0);

    expect(await list()).toContain(kept.id);
    expect(await list()).not.toContain(shelved.id);
    expect(await list("?archived=true")).toContain(shelved.id);
    expect(await list("?archived=true")).not.toContain(kept.id);
    expect(await list("?archived=any")).toEqual(expect.arrayContaining([kept.id, shelved.id]));

    const posted = await t.request("POST", `/api/threads/${shelved.id}/messages`, {
      token: alice,
      body: { message: "still here" },
    });
    expect(posted.status).toBe(201);

    await patch(shelved.id, { archived: false });
    expect(await list()).toContain(shelved.id);
  });
});

describe("GET /api/threads/{id}/export", () => {
  it("exports the whole thread in seq order as JSON, across more than one page", async () => {
    const thread = await t.createThread(alice, { title: "Long one" });
    const sent: string[] = [];
    for (let i = 0; i < 130; i++) {
      const res = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
        token: alice,
        body: { message: `message ${i}` },
      });
      sent.push(res.body.id);
    }
    const res = await t.request<{
      thread: WireThread;
      exported_at: string;
      messages: { id: string; seq: number; content: string; state: string }[];
    }>("GET", `/api/threads/${thread.id}/export`, { token: alice });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="thread-.*\.json"$/);
    expect(res.body.thread).toMatchObject({ id: thread.id, title: "Long one" });
    expect(res.body.messages.map((m) => m.id)).toEqual(sent);
    const seqs = res.body.messages.map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(res.body.messages[0]).toMatchObject({ content: "message 0", state: "complete" });
  });

  it("exports Markdown, with a reply still streaming as it stands", async () => {
    const thread = await t.createThread(alice, { title: "Notes" });
    await t.request("POST", `/api/threads/${thread.id}/messages`, {
      token: alice,
      body: { message: "Hello?" },
    });
    const reply = await t.request<{ id: string }>("POST", `/api/threads/${thread.id}/messages`, {
      token: agent,
      body: { message: "", state: "streaming" },
    });
    await t.request("POST", `/api/messages/${reply.body.id}/deltas`, {
      token: agent,
      body: { index: 0, text: "Hi th" },
    });
    const res = await fetch(`${t.stack.httpUrl}/api/threads/${thread.id}/export?format=markdown`, {
      headers: { authorization: `Bearer ${alice}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/markdown; charset=utf-8");
    const text = await res.text();
    expect(text.startsWith("# Notes\n")).toBe(true);
    expect(text).toMatch(/\*\*user\*\* · alice · .* UTC\n\nHello\?\n/);
    expect(text).toMatch(/\*\*assistant\*\* · title-bot · .* UTC \(streaming\)\n\nHi th\n/);
  });

  it("answers 404 for another user's thread and 422 for an unknown format", async () => {
    const thread = await t.createThread(alice);
    expect((await t.request("GET", `/api/threads/${thread.id}/export`, { token: bob })).status).toBe(404);
    expect(
      (await t.request("GET", `/api/threads/${thread.id}/export?format=pdf`, { token: alice })).status,
    ).toBe(422);
  });
});
