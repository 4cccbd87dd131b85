/**
 * The rollback switch (ACCEPT_MODE=sync): the legacy behaviour — the message is committed to
 * PostgreSQL inside the request — with the WebSocket notification still sent, and ClickHouse fed
 * through the outbox.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let alice: string;

beforeAll(async () => {
  t = await startTestStack({ env: { ACCEPT_MODE: "sync" } });
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
