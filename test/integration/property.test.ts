/**
 * Property-based: random and hostile requests and frames against the running stack. Whatever
 * comes in, the answer is never a 5xx, the stack keeps serving, and only accepted messages are
 * written — the ledger of 2xx answers matches what reached SQS and PostgreSQL exactly.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

let t: TestStack;
let owner: string;
let thread: string;
const accepted = new Set<string>();

beforeAll(async () => {
  t = await startTestStack({ env: { RATE_LIMIT_PER_SECOND: "0" } });
  owner = await t.token(`fuzz-${randomUUID()}`);
  thread = (await t.createThread(owner)).id;
});

afterAll(async () => {
  await t.stop();
});

const hostileString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "\ud800",
    "'; DROP TABLE messages;--",
    "{id:String}",
    "../../etc/passwd",
    "%00",
    "null",
    "__proto__",
    "constructor",
    "x".repeat(17_000),
  ),
);

const jsonValue = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.dictionary(
    fc.constantFrom("message", "metadata", "client_message_id", "role", "__proto__", "extra"),
    fc.jsonValue({ maxDepth: 3 }),
  ),
  fc.record(
    {
      message: fc.oneof(hostileString, fc.jsonValue({ maxDepth: 2 })),
      metadata: fc.oneof(
        fc.dictionary(hostileString, fc.jsonValue({ maxDepth: 3 })),
        fc.jsonValue({ maxDepth: 2 }),
      ),
      client_message_id: fc.oneof(hostileString, fc.uuid()),
      role: fc.oneof(fc.constantFrom("user", "assistant", "system"), hostileString),
    },
    { requiredKeys: [] },
  ),
);

const body = fc.oneof(
  jsonValue.map((v) => JSON.stringify(v)),
  hostileString,
  fc.constant("{"),
  fc.constant("[]"),
);

// URLs stay within what API Gateway forwards (its own limits answer longer ones before any handler).
const pathSegment = fc.oneof(
  fc.constant("THREAD"),
  fc.uuid(),
  hostileString.filter((s) => s.length < 1000).map((s) => encodeURIComponent(s.toWellFormed())),
  fc.constantFrom("%E0%A4%A", "%", "%zz", "..", "%2e%2e", "%00"),
);
const path = fc.oneof(
  pathSegment.map((id) => `/api/threads/${id}/messages`),
  pathSegment.map((id) => `/api/threads/${id}`),
  pathSegment.map((id) => `/api/messages/${id}`),
  fc.constantFrom("/api/threads", "/api/health", "/api/admin/recover-redis-cache", "/api", "/"),
  fc
    .tuple(fc.constantFrom("/api/threads/THREAD/messages?", "/api/threads?"), fc.string({ maxLength: 60 }))
    .map(([p, q]) => `${p}${q}`),
);

/** What an HTTP client can put in a header (fetch refuses control characters). */
const headerText = fc.stringMatching(/^[\x20-\x7e]{0,120}$/);

const authorization = fc.oneof(
  fc.constant("OWNER"),
  fc.constant(undefined),
  headerText.map((s) => `Bearer ${s}`),
  headerText,
  fc.constant("Basic dXNlcjpwYXNz"),
);

describe("random and hostile HTTP requests", () => {
  it("never get a 5xx, always get JSON, and write nothing when rejected", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
        path,
        body,
        authorization,
        fc.option(headerText, { nil: undefined }),
        async (method, rawPath, rawBody, auth, idempotencyKey) => {
          const target = rawPath.replace("THREAD", thread);
          const headers: Record<string, string> = {};
          if (auth !== undefined) headers.authorization = auth === "OWNER" ? `Bearer ${owner}` : auth;
          if (idempotencyKey !== undefined) headers["idempotency-key"] = idempotencyKey;
          const res = await fetch(`${t.stack.httpUrl}${target}`, {
            method,
            headers,
            ...(method === "GET" ? {} : { body: rawBody }),
          });
          const text = await res.text();
          expect(res.status).toBeLessThan(500);
          const parsed = JSON.parse(text) as Record<string, unknown>;
          if (res.status >= 400) {
            expect(parsed).toMatchObject({
              error: { code: expect.any(String), message: expect.any(String) },
            });
          }
          if (method === "POST" && res.status === 201 && typeof parsed.seq === "number") {
            accepted.add(String(parsed.id));
          }
        },
      ),
      { numRuns: 300 },
    );

    const health = await t.request("GET", "/api/health", { token: owner });
    expect(health.status).toBe(200);
    await waitFor(async () => {
      const { rows } = await t.pg.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
        [thread],
      );
      return rows[0]?.n === accepted.size;
    });
    const { rows } = await t.pg.query<{ id: string }>("SELECT id FROM messages WHERE thread_id = $1", [
      thread,
    ]);
    expect(new Set(rows.map((r) => r.id))).toEqual(accepted);
  });
});

describe("random and hostile WebSocket frames", () => {
  it("never break the connection or the stack, and only accepted messages are written", async () => {
    const socket = await t.ws(owner);
    const wsThread = (await t.createThread(owner)).id;
    const frame = fc.oneof(
      jsonValue.map((v) => JSON.stringify(v)),
      fc
        .tuple(
          fc.constantFrom("subscribe", "unsubscribe", "sendMessage", "ping", "$connect", "$default", "nope"),
          jsonValue,
        )
        .map(([action, extra]) =>
          JSON.stringify({
            ...(typeof extra === "object" && extra !== null && !Array.isArray(extra) ? extra : {}),
            action,
            threadId: wsThread,
          }),
        ),
      hostileString,
    );
    await fc.assert(
      fc.asyncProperty(frame, async (raw) => {
        socket.sendRaw(raw);
        await socket.barrier();
      }),
      { numRuns: 150 },
    );
    const acks = socket.frames.filter(
      (f) => f.type === "message.created" && f.ack === true && f.replayed === false,
    );
    const ids = new Set(acks.map((f) => (f.message as { id: string }).id));
    expect(socket.frames.some((f) => f.type === "error" && f.code === "internal_error")).toBe(false);
    await waitFor(async () => {
      const { rows } = await t.pg.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM messages WHERE thread_id = $1",
        [wsThread],
      );
      return rows[0]?.n === ids.size;
    });
    const { rows } = await t.pg.query<{ id: string }>("SELECT id FROM messages WHERE thread_id = $1", [
      wsThread,
    ]);
    expect(new Set(rows.map((r) => r.id))).toEqual(ids);
    expect((await socket.request({ action: "ping" })).type).toBe("pong");
  });
});
