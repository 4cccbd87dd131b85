/**
 * A web page on another origin calls the API as a browser does: a real preflight (OPTIONS with
 * Origin, Access-Control-Request-Method and Access-Control-Request-Headers), answered by the
 * gateway without running a function, then the cross-origin requests themselves, whose answers a
 * script may read (CORS headers, exposed Server-Timing / Idempotent-Replayed / Retry-After, and
 * Timing-Allow-Origin). The allowed origins come from CORS_ALLOWED_ORIGINS, as with `npm start`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CORS_ALLOW_METHODS } from "../../lib/shared/cors.ts";
import { corsFromEnvironment, DEFAULT_CORS_ORIGINS } from "../../scripts/local-stack/http-gateway.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";

const APP = "https://chat-web.example.test";
const OTHER = "https://evil.example.test";

let t: TestStack;
let alice: string;
const previous = process.env.CORS_ALLOWED_ORIGINS;

beforeAll(async () => {
  process.env.CORS_ALLOWED_ORIGINS = `${APP}, http://localhost:5173`;
  t = await startTestStack();
  alice = await t.token("alice");
});

afterAll(async () => {
  await t.stop();
  if (previous === undefined) delete process.env.CORS_ALLOWED_ORIGINS;
  else process.env.CORS_ALLOWED_ORIGINS = previous;
});

const preflight = (path: string, origin: string, method = "POST") =>
  fetch(`${t.stack.httpUrl}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": method,
      "access-control-request-headers": "authorization, content-type, idempotency-key",
    },
  });

const list = (value: string | null): string[] =>
  (value ?? "")
    .split(",")
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v.length > 0)
    .sort();

describe("a browser page on an allowed origin", () => {
  it("gets its preflight answered 204 with the methods and headers it asked for, by the gateway", async () => {
    const thread = await t.createThread(alice);
    // A path a function would answer 404 (the catch-all): the gateway answers first.
    for (const path of [`/api/threads/${thread.id}/messages`, "/api/threads", "/no/such/route"]) {
      const res = await preflight(path, APP);
      expect(res.status, path).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(list(res.headers.get("access-control-allow-methods"))).toEqual(
        list(CORS_ALLOW_METHODS.join(",")),
      );
      expect(list(res.headers.get("access-control-allow-methods"))).toEqual(
        expect.arrayContaining(["delete", "get", "post", "put"]),
      );
      expect(list(res.headers.get("access-control-allow-headers"))).toEqual(
        ["authorization", "content-type", "idempotency-key"].sort(),
      );
      expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
      expect(res.headers.get("vary")).toContain("Origin");
      expect(await res.text()).toBe("");
    }
  });

  it("reads a cross-origin POST's answer, its Server-Timing (Timing-Allow-Origin) and a replay's Idempotent-Replayed", async () => {
    const thread = await t.createThread(alice);
    const post = () =>
      fetch(`${t.stack.httpUrl}/api/threads/${thread.id}/messages`, {
        method: "POST",
        headers: {
          origin: APP,
          authorization: `Bearer ${alice}`,
          "content-type": "application/json",
          "idempotency-key": "cors-1",
        },
        body: JSON.stringify({ message: "from another origin" }),
      });
    const first = await post();
    expect(first.status).toBe(201);
    expect(first.headers.get("access-control-allow-origin")).toBe(APP);
    expect(list(first.headers.get("access-control-expose-headers"))).toEqual(
      ["idempotent-replayed", "retry-after", "server-timing"].sort(),
    );
    expect(first.headers.get("server-timing")).toMatch(/total;dur=/);
    expect(list(first.headers.get("timing-allow-origin"))).toContain(APP);
    const replay = await post();
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.headers.get("access-control-allow-origin")).toBe(APP);
  });

  it("reads a cross-origin GET's answer, and an error answer too", async () => {
    const res = await fetch(`${t.stack.httpUrl}/api/threads`, {
      headers: { origin: APP, authorization: `Bearer ${alice}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("vary")).toContain("Origin");
    const unauthenticated = await fetch(`${t.stack.httpUrl}/api/threads`, { headers: { origin: APP } });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get("access-control-allow-origin")).toBe(APP);
  });
});

describe("a page on an origin that is not allowed", () => {
  it("gets no CORS permission, for the preflight or the request", async () => {
    const pre = await preflight("/api/threads", OTHER);
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    expect(pre.headers.get("access-control-allow-headers")).toBeNull();
    const res = await fetch(`${t.stack.httpUrl}/api/threads`, {
      headers: { origin: OTHER, authorization: `Bearer ${alice}` },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-expose-headers")).toBeNull();
  });
});

describe("CORS_ALLOWED_ORIGINS", () => {
  it("defaults to a local development server's origins, and refuses what is not an origin", () => {
    expect(corsFromEnvironment(undefined).allowedOrigins).toEqual(DEFAULT_CORS_ORIGINS);
    expect(DEFAULT_CORS_ORIGINS).toEqual(["http://127.0.0.1:3000", "http://localhost:3000"]);
    expect(corsFromEnvironment("").allowedOrigins).toEqual([]);
    expect(() => corsFromEnvironment("https://app.example.test/path")).toThrow(/CORS_ALLOWED_ORIGINS/);
  });
});
