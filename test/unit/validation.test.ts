import { describe, expect, it } from "vitest";
import {
  type AppError,
  BadRequestError,
  PayloadTooLargeError,
  ValidationError,
} from "../../lambdas/core/errors.ts";
import {
  isUuid,
  type Limits,
  parseCreateThread,
  parseHistoryQuery,
  parseId,
  parsePostMessage,
  parseRecoverCache,
  parseSubscribe,
  parseThreadListQuery,
  parseUnsubscribe,
  parseWsSendMessage,
} from "../../lambdas/core/validation.ts";
import { caught } from "./caught.ts";

const limits: Limits = {
  maxMessageBytes: 16,
  maxMetadataBytes: 32,
  maxTitleLength: 10,
  maxPageSize: 100,
  defaultPageSize: 20,
};

const THREAD = "0196a0b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b";

const expectError = async (
  work: () => unknown,
  type: new (...args: never[]) => AppError,
  fields: { kind: string; code: string },
): Promise<AppError> => {
  const error = await caught(work);
  expect(error).toBeInstanceOf(type);
  expect(error).toMatchObject(fields);
  return error as AppError;
};

const invalid = { kind: "invalid", code: "validation_failed" };

describe("parsePostMessage", () => {
  it("accepts a message with defaults for the optional fields", () => {
    expect(parsePostMessage({ message: "hello" }, limits)).toEqual({
      content: "hello",
      metadata: {},
      clientMessageId: undefined,
      role: undefined,
      streaming: false,
    });
  });

  it("keeps metadata, client_message_id and role", () => {
    expect(
      parsePostMessage(
        {
          message: "hi",
          metadata: { a: [1, "x", null, true] },
          client_message_id: "abc.1:2_3-4",
          role: "system",
        },
        limits,
      ),
    ).toEqual({
      content: "hi",
      metadata: { a: [1, "x", null, true] },
      clientMessageId: "abc.1:2_3-4",
      role: "system",
      streaming: false,
    });
  });

  it.each([
    ["empty", ""],
    ["whitespace only", " \t\n "],
  ])("refuses an %s message with 422 validation_failed", async (_what, message) => {
    const error = await expectError(() => parsePostMessage({ message }, limits), ValidationError, invalid);
    expect(error.details).toEqual([{ path: "message", message: "must not be empty" }]);
  });

  it("refuses a body without a message, or with a message that is not a string", async () => {
    await expectError(() => parsePostMessage({}, limits), ValidationError, invalid);
    await expectError(() => parsePostMessage({ message: 42 }, limits), ValidationError, invalid);
    await expectError(() => parsePostMessage(null, limits), ValidationError, invalid);
  });

  it("measures the size limit in UTF-8 bytes: 413 message_too_large above it", async () => {
    expect(parsePostMessage({ message: "a".repeat(16) }, limits).content).toHaveLength(16);
    // 6 characters, 18 bytes.
    await expectError(() => parsePostMessage({ message: "€€€€€€" }, limits), PayloadTooLargeError, {
      kind: "too_large",
      code: "message_too_large",
    });
  });

  it.each([
    ["an array", [1, 2]],
    ["a string", "meta"],
    ["null", null],
    ["a number", 3],
  ])("refuses metadata that is %s with 422", async (_what, metadata) => {
    const error = await expectError(
      () => parsePostMessage({ message: "x", metadata }, limits),
      ValidationError,
      invalid,
    );
    expect(error.details?.[0]?.path).toBe("metadata");
  });

  it("measures metadata as serialised JSON bytes: 413 metadata_too_large above the limit", async () => {
    // {"k":"<24 x>"} is 32 bytes: at the limit.
    expect(parsePostMessage({ message: "x", metadata: { k: "x".repeat(24) } }, limits).metadata).toEqual({
      k: "x".repeat(24),
    });
    await expectError(
      () => parsePostMessage({ message: "x", metadata: { k: "x".repeat(25) } }, limits),
      PayloadTooLargeError,
      { kind: "too_large", code: "metadata_too_large" },
    );
    // 9 characters of 3 bytes each: 19 characters of JSON, 35 bytes.
    await expectError(
      () => parsePostMessage({ message: "x", metadata: { k: "€".repeat(9) } }, limits),
      PayloadTooLargeError,
      { kind: "too_large", code: "metadata_too_large" },
    );
  });

  it("refuses unknown fields with 422 and names them in the details", async () => {
    const error = await expectError(
      () => parsePostMessage({ message: "x", content: "y", extra: 1 }, limits),
      ValidationError,
      invalid,
    );
    expect(error.details).toEqual([{ path: "(body)", message: "unknown field(s): content, extra" }]);
  });

  it.each([
    ["a NUL character in the message", { message: "a\u0000b" }],
    ["an unpaired high surrogate in the message", { message: "a\uD800b" }],
    ["an unpaired low surrogate in the message", { message: "\uDC00" }],
    ["a NUL character in a metadata value", { message: "x", metadata: { k: "\u0000" } }],
    ["an unpaired surrogate in a metadata key", { message: "x", metadata: { "\uD83D": 1 } }],
    ["a NUL character deep in metadata", { message: "x", metadata: { a: [{ b: "\u0000" }] } }],
  ])("refuses %s with 422", async (_what, body) => {
    await expectError(() => parsePostMessage(body, limits), ValidationError, invalid);
  });

  it("accepts well-formed surrogate pairs (emoji)", () => {
    expect(parsePostMessage({ message: "🙂" }, limits).content).toBe("🙂");
  });

  it("refuses metadata nested deeper than 16 levels", async () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 18; i++) deep = { d: deep };
    await expectError(
      () => parsePostMessage({ message: "x", metadata: deep }, { ...limits, maxMetadataBytes: 10_000 }),
      ValidationError,
      invalid,
    );
  });

  it.each([["has space"], ["x".repeat(129)], [""], ["é"]])(
    "refuses the client_message_id %j with 422",
    async (clientMessageId) => {
      await expectError(
        () => parsePostMessage({ message: "x", client_message_id: clientMessageId }, limits),
        ValidationError,
        invalid,
      );
    },
  );

  it("refuses an unknown role with 422", async () => {
    await expectError(
      () => parsePostMessage({ message: "x", role: "admin" }, limits),
      ValidationError,
      invalid,
    );
  });

  describe("Idempotency-Key header", () => {
    it("is used as the client_message_id when the body has none", () => {
      expect(parsePostMessage({ message: "x" }, limits, "key-1").clientMessageId).toBe("key-1");
    });

    it("is accepted when it equals the body's client_message_id", () => {
      expect(
        parsePostMessage({ message: "x", client_message_id: "key-1" }, limits, "key-1").clientMessageId,
      ).toBe("key-1");
    });

    it("is refused with 400 idempotency_key_mismatch when it differs from the body's client_message_id", async () => {
      await expectError(
        () => parsePostMessage({ message: "x", client_message_id: "key-1" }, limits, "key-2"),
        BadRequestError,
        { kind: "bad_request", code: "idempotency_key_mismatch" },
      );
    });

    it("is refused with 422 when it is not a valid client id", async () => {
      const error = await expectError(
        () => parsePostMessage({ message: "x" }, limits, "not valid"),
        ValidationError,
        invalid,
      );
      expect(error.details?.[0]?.path).toBe("Idempotency-Key");
    });
  });
});

describe("parseId", () => {
  it("accepts a UUID and lower-cases it", () => {
    expect(parseId(THREAD.toUpperCase(), "threadId")).toBe(THREAD);
    expect(isUuid(THREAD)).toBe(true);
  });

  it.each([[undefined], [""], ["not-a-uuid"], [`${THREAD}0`], [`${THREAD.slice(0, -1)}g`]])(
    "refuses %j with 400 invalid_id naming the parameter",
    async (value) => {
      const error = await expectError(() => parseId(value, "threadId"), BadRequestError, {
        kind: "bad_request",
        code: "invalid_id",
      });
      expect(error.message).toBe("threadId must be a UUID");
    },
  );
});

describe("parseHistoryQuery", () => {
  it("defaults to the newest page of the default size", () => {
    expect(parseHistoryQuery({}, limits)).toEqual({ direction: "backward", limit: 20 });
  });

  it("walks backward from before and forward from after", () => {
    expect(parseHistoryQuery({ before: "1500", limit: "5" }, limits)).toEqual({
      direction: "backward",
      before: 1500,
      limit: 5,
    });
    expect(parseHistoryQuery({ after: "0", limit: "100" }, limits)).toEqual({
      direction: "forward",
      after: 0,
      limit: 100,
    });
  });

  it("keeps 16-digit seqs exact", () => {
    expect(parseHistoryQuery({ after: "1750000000000500" }, limits)).toMatchObject({
      after: 1750000000000500,
    });
  });

  it("refuses before and after together with 400 invalid_cursor", async () => {
    await expectError(() => parseHistoryQuery({ before: "5", after: "1" }, limits), BadRequestError, {
      kind: "bad_request",
      code: "invalid_cursor",
    });
  });

  it("refuses a limit above the maximum with 422 naming limit", async () => {
    const error = await expectError(
      () => parseHistoryQuery({ limit: "101" }, limits),
      ValidationError,
      invalid,
    );
    expect(error.details).toEqual([{ path: "limit", message: "must be at most 100" }]);
  });

  it.each([
    [{ limit: "0" }],
    [{ limit: "abc" }],
    [{ limit: "2.5" }],
    [{ before: "-1" }],
    [{ after: "x" }],
    [{ cursor: "1" }],
  ])("refuses %j with 422", async (query) => {
    await expectError(() => parseHistoryQuery(query, limits), ValidationError, invalid);
  });
});

describe("parseCreateThread", () => {
  it("accepts an empty or missing body", () => {
    expect(parseCreateThread(undefined, limits)).toEqual({ title: null, metadata: {} });
    expect(parseCreateThread(null, limits)).toEqual({ title: null, metadata: {} });
    expect(parseCreateThread({}, limits)).toEqual({ title: null, metadata: {} });
  });

  it("keeps a title and metadata", () => {
    expect(parseCreateThread({ title: "Plans", metadata: { a: 1 } }, limits)).toEqual({
      title: "Plans",
      metadata: { a: 1 },
    });
  });

  it("refuses a title over the maximum length with 422", async () => {
    const error = await expectError(
      () => parseCreateThread({ title: "x".repeat(11) }, limits),
      ValidationError,
      invalid,
    );
    expect(error.details?.[0]?.path).toBe("title");
  });

  it("refuses a title with a NUL character, unknown fields and oversized metadata", async () => {
    await expectError(() => parseCreateThread({ title: "a\u0000" }, limits), ValidationError, invalid);
    await expectError(() => parseCreateThread({ name: "x" }, limits), ValidationError, invalid);
    await expectError(
      () => parseCreateThread({ metadata: { k: "x".repeat(40) } }, limits),
      PayloadTooLargeError,
      { kind: "too_large", code: "metadata_too_large" },
    );
  });
});

describe("parseSubscribe / parseUnsubscribe", () => {
  it("reads the thread, the seq to catch up from and the request id", () => {
    expect(
      parseSubscribe({ action: "subscribe", threadId: THREAD.toUpperCase(), sinceSeq: 12, request_id: "r1" }),
    ).toEqual({ threadId: THREAD, sinceSeq: 12, requestId: "r1" });
    expect(parseSubscribe({ action: "subscribe", threadId: THREAD })).toEqual({
      threadId: THREAD,
      sinceSeq: undefined,
      requestId: undefined,
    });
    expect(parseUnsubscribe({ action: "unsubscribe", threadId: THREAD })).toEqual({
      threadId: THREAD,
      requestId: undefined,
    });
  });

  it("refuses a thread id that is not a UUID with 400 invalid_id", async () => {
    await expectError(() => parseSubscribe({ action: "subscribe", threadId: "t1" }), BadRequestError, {
      kind: "bad_request",
      code: "invalid_id",
    });
  });

  it.each([
    [{ action: "subscribe", threadId: THREAD, extra: 1 }],
    [{ action: "subscribe" }],
    [{ action: "subscribe", threadId: THREAD, sinceSeq: -1 }],
    [{ action: "subscribe", threadId: THREAD, request_id: "r".repeat(129) }],
    [{ action: "unsubscribe", threadId: THREAD }],
  ])("refuses the subscribe frame %j with 422", async (frame) => {
    await expectError(() => parseSubscribe(frame), ValidationError, invalid);
  });
});

describe("parseWsSendMessage", () => {
  it("splits the frame into thread, request id and a message checked like the HTTP body", () => {
    expect(
      parseWsSendMessage(
        { action: "sendMessage", threadId: THREAD, request_id: "r9", message: "hi", client_message_id: "c1" },
        limits,
      ),
    ).toEqual({
      threadId: THREAD,
      requestId: "r9",
      input: { content: "hi", metadata: {}, clientMessageId: "c1", role: undefined, streaming: false },
    });
  });

  it("applies the message rules: empty, too large, unknown fields", async () => {
    const frame = { action: "sendMessage", threadId: THREAD };
    await expectError(() => parseWsSendMessage({ ...frame, message: " " }, limits), ValidationError, invalid);
    await expectError(
      () => parseWsSendMessage({ ...frame, message: "x".repeat(17) }, limits),
      PayloadTooLargeError,
      {
        kind: "too_large",
        code: "message_too_large",
      },
    );
    const error = await expectError(
      () => parseWsSendMessage({ ...frame, message: "x", bogus: true }, limits),
      ValidationError,
      invalid,
    );
    expect(error.details).toEqual([{ path: "(body)", message: "unknown field(s): bogus" }]);
  });

  it("refuses a frame with another action or a bad thread id", async () => {
    await expectError(
      () => parseWsSendMessage({ action: "subscribe", threadId: THREAD, message: "x" }, limits),
      ValidationError,
      invalid,
    );
    await expectError(
      () => parseWsSendMessage({ action: "sendMessage", threadId: "nope", message: "x" }, limits),
      BadRequestError,
      { kind: "bad_request", code: "invalid_id" },
    );
  });
});

describe("parseRecoverCache and parseThreadListQuery", () => {
  it("reads the thread to recover", async () => {
    expect(parseRecoverCache({ thread_id: THREAD })).toEqual({ threadId: THREAD });
    await expectError(() => parseRecoverCache({ thread_id: "x" }), BadRequestError, {
      kind: "bad_request",
      code: "invalid_id",
    });
  });

  it("defaults and caps the thread page size and passes the cursor on", () => {
    expect(parseThreadListQuery({}, limits)).toEqual({ limit: 20 });
    expect(parseThreadListQuery({ limit: "500", cursor: "abc" }, limits)).toEqual({
      limit: 100,
      cursor: "abc",
    });
  });
});
