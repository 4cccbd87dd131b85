/**
 * The rollback switch (ACCEPT_MODE=sync): the legacy behaviour — the message is committed to
 * PostgreSQL inside the request — with the WebSocket notification still sent, and ClickHouse fed
 * through the outbox; a thread deleted while its messages wait in the outbox takes them along.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clickhouseRows, erasureComplete, leftovers, NOTHING_LEFT } from "../support/erasure.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let alice: string;

beforeAll(async () => {
  // The relay runs when a test runs it.
  t = await startTestStack({ env: { ACCEPT_MODE: "sync" }, outboxIntervalMs: 0 });
  alice = await t.token("alice");
});

afterAll(async () => {
  await t.stop();
});

describe("with ACCEPT_MODE=sync", () => {
  it("commits to PostgreSQL before answering, notifies subscribers, and archives through the outbox", async () => {
    const thread = await t.createThread(alice);
    const socket = await t.ws(alice);
    await socket.request({ action: "subscribe", threadId: thread.id });

    const res = await t.request<{ id: string; seq: number; durability: string }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      { token: alice, body: { message: "the old way", client_message_id: "legacy-1" } },
    );
    expect(res.status).toBe(201);
    expect(res.body.durability).toBe("committed");
    // No waiting: the row is there when the answer is.
    expect(await t.rowsInPostgres(res.body.id)).toBe(1);
    expect(res.headers.get("server-timing")).toMatch(/db;dur=/);

    const pushed = await socket.next((f) => f.type === "message.created");
    expect(pushed.message).toMatchObject({ id: res.body.id, seq: res.body.seq });

    // The relay forwards the message, confirms it to Redis, and only then clears it.
    await waitFor(
      async () => {
        await t.stack.relayOutbox();
        const { rows } = await t.pg.query("SELECT 1 FROM analytics_outbox WHERE message_id = $1", [
          res.body.id,
        ]);
        return rows.length === 0 && (await t.rowsInClickHouse(res.body.id)) === 1;
      },
      { what: "archived via the outbox, and the outbox cleared" },
    );
    expect(t.stack.eventSources.persist.stats.records).toBe(0);

    const retry = await t.request<{ id: string; replayed: boolean }>(
      "POST",
      `/api/threads/${thread.id}/messages`,
      {
        token: alice,
        body: { message: "the old way", client_message_id: "legacy-1" },
      },
    );
    expect(retry.body).toMatchObject({ id: res.body.id, replayed: true });
    expect(await t.rowsInPostgres(res.body.id)).toBe(1);

    const history = await t.request<{ messages: { id: string }[] }>(
      "GET",
      `/api/threads/${thread.id}/messages`,
      {
        token: alice,
      },
    );
    expect(history.body.messages.map((m) => m.id)).toEqual([res.body.id]);
  });
});

describe("a thread deleted while its messages wait in the outbox", () => {
  it("takes the entries along: the relay forwards nothing of it, and no tier keeps anything", async () => {
    const admin = await t.token("ops", ["admin"]);
    const thread = await t.createThread(alice);
    const ids = await t.postMessages(alice, thread.id, ["one", "two", "three"]);
    const { rows } = await t.pg.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM analytics_outbox WHERE message_id = ANY($1::uuid[])",
      [ids],
    );
    expect(rows[0]?.n).toBe(3);

    const deleted = await t.request<{ erasure_id: string }>("DELETE", `/api/threads/${thread.id}`, {
      token: alice,
    });
    expect(deleted.status).toBe(202);
    await t.stack.relayOutbox();
    await erasureComplete(t, deleted.body.erasure_id, admin);
    await waitFor(async () => (await t.queueDepth(t.stack.queues.analytics.url)) === 0, {
      what: "analytics queue drained",
    });

    expect(await leftovers(t, [thread.id], ids)).toEqual(NOTHING_LEFT);
    expect(await clickhouseRows(t, [thread.id], false)).toEqual({ messages: 0, feedback: 0 });
  });
});
