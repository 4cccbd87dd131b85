/** What goes on the queues: characters SQS refuses are escaped, envelopes respect the size limit. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { batchRequests, MAX_ENTRIES, MAX_REQUEST_BYTES } from "../../lambdas/adapters/sqs/batch.ts";
import { sqsBody } from "../../lambdas/adapters/sqs/body.ts";
import { packEnvelopes } from "../../lambdas/adapters/sqs/sqs-analytics-publisher.ts";
import type { Message } from "../../lambdas/core/model.ts";
import { parseAnalyticsEnvelope } from "../../lambdas/core/records.ts";

/** SQS's allowed characters: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. */
const sqsAllowed = (body: string): boolean =>
  [...body].every((ch) => {
    const c = ch.codePointAt(0) ?? 0;
    return (
      c === 0x9 ||
      c === 0xa ||
      c === 0xd ||
      (c >= 0x20 && c <= 0xd7ff) ||
      (c >= 0xe000 && c <= 0xfffd) ||
      c >= 0x10000
    );
  });

const message = (content: string, i = 0): Message => ({
  id: `0190f0e0-0000-7000-8000-${String(i).padStart(12, "0")}`,
  thread_id: "0190f0e0-0000-7000-8000-000000000000",
  seq: 1_000_000 + i,
  role: "user",
  user_id: "u",
  content,
  metadata: { note: content.slice(0, 10) },
  client_message_id: null,
  created_at: 1,
  created_at_ms: 1000,
});

/** Stricter: only Basic Multilingual Plane characters (what some emulators enforce). */
const bmpOnly = (body: string): boolean => !/[\ud800-\udfff\ufffe\uffff]/.test(body);

describe("sqsBody", () => {
  it("escapes the noncharacters SQS refuses and decodes back to the same value", () => {
    const value = { text: "a\ufffeb\uffffc\u0001\u{1f600}" };
    const body = sqsBody(value);
    expect(sqsAllowed(body)).toBe(true);
    expect(bmpOnly(body)).toBe(true);
    expect(JSON.parse(body)).toEqual(value);
  });

  it("produces only characters SQS accepts for any well-formed string", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary" }).map((s) => s.toWellFormed()),
        (text) => {
          const body = sqsBody({ text });
          return sqsAllowed(body) && bmpOnly(body) && (JSON.parse(body) as { text: string }).text === text;
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("packEnvelopes", () => {
  it("splits messages into envelopes under the size limit that parse back to the same messages, in order", () => {
    const messages = Array.from({ length: 50 }, (_, i) => message("x\ufffe".repeat(500), i));
    const bodies = packEnvelopes(messages, 20_000);
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) {
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(20_000);
      expect(sqsAllowed(body)).toBe(true);
    }
    expect(bodies.flatMap((b) => parseAnalyticsEnvelope(b).messages)).toEqual(messages);
  });
});

describe("batchRequests", () => {
  it("keeps every item, in order, in requests within the entry and byte limits", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: MAX_REQUEST_BYTES }), { maxLength: 60 }), (sizes) => {
        const requests = batchRequests(sizes, (bytes) => bytes);
        expect(requests.flat()).toEqual(sizes);
        for (const request of requests) {
          expect(request.length).toBeGreaterThan(0);
          expect(request.length).toBeLessThanOrEqual(MAX_ENTRIES);
          expect(request.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
        }
      }),
    );
  });

  it("fills requests up to the entry limit", () => {
    expect(
      batchRequests(
        Array.from({ length: 25 }, () => 100),
        (b) => b,
      ).map((r) => r.length),
    ).toEqual([10, 10, 5]);
  });
});
