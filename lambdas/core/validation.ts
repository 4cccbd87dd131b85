/**
 * Input rules shared by the HTTP and WebSocket entry points. Every rejection is an AppError with a
 * stable code; nothing reaches a tier before it passes here.
 */
import * as z from "zod";
import { BadRequestError, type ErrorDetail, PayloadTooLargeError, ValidationError } from "./errors.ts";
import { type HistoryQuery, type JsonObject, MESSAGE_ROLES, type MessageRole } from "./model.ts";
import type { ArchivedFilter, ThreadChange } from "./ports.ts";

export interface Limits {
  /** UTF-8 bytes of a message's content. */
  readonly maxMessageBytes: number;
  /** UTF-8 bytes of a message's or thread's metadata, serialised as JSON. */
  readonly maxMetadataBytes: number;
  readonly maxTitleLength: number;
  readonly maxPageSize: number;
  readonly defaultPageSize: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CLIENT_MESSAGE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_METADATA_DEPTH = 16;

export const isUuid = (value: string): boolean => UUID.test(value);

/** Path and query ids: a malformed id is a 400, never a lookup. */
export const parseId = (value: string | undefined, name: string): string => {
  if (value === undefined || !isUuid(value)) {
    throw new BadRequestError("invalid_id", `${name} must be a UUID`);
  }
  return value.toLowerCase();
};

const byteLength = (s: string): number => Buffer.byteLength(s, "utf8");

/**
 * PostgreSQL cannot store NUL in text/jsonb and would silently replace lone surrogates: such a
 * message could be accepted but never persisted verbatim, so it is refused up front.
 */
const storableString = (s: string): boolean => !s.includes("\u0000") && s.isWellFormed();

/** A user id in a path (`DELETE /api/admin/users/{userId}`): what a token's subject may be. */
export const parseUserId = (value: string | undefined): string => {
  if (value === undefined || value.length === 0 || value.length > 256 || !storableString(value)) {
    throw new BadRequestError("invalid_id", "userId must be 1-256 characters");
  }
  return value;
};

const storableJson = (value: unknown, depth = 0): boolean => {
  if (depth > MAX_METADATA_DEPTH) return false;
  if (typeof value === "string") return storableString(value);
  if (typeof value === "number") return Number.isFinite(value);
  if (value === null || typeof value === "boolean") return true;
  if (Array.isArray(value)) return value.every((v) => storableJson(v, depth + 1));
  if (typeof value === "object") {
    return Object.entries(value).every(([k, v]) => storableString(k) && storableJson(v, depth + 1));
  }
  return false;
};

const text = z.string().refine(storableString, "must not contain NUL characters or unpaired surrogates");
const metadata = z
  .record(z.string(), z.unknown())
  .refine(storableJson, "must be JSON without NUL characters, unpaired surrogates or deep nesting");

const postMessageSchema = z.strictObject({
  message: text,
  state: z.literal("streaming").optional(),
  metadata: metadata.optional(),
  client_message_id: z
    .string()
    .regex(CLIENT_MESSAGE_ID, "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    .optional(),
  role: z.enum(MESSAGE_ROLES).optional(),
});

export interface PostMessageInput {
  readonly content: string;
  readonly metadata: JsonObject;
  readonly clientMessageId: string | undefined;
  readonly role: MessageRole | undefined;
  /** An assistant reply opened to stream (docs/streaming.md); its content may be empty. */
  readonly streaming: boolean;
}

const toDetails = (error: z.ZodError): ErrorDetail[] =>
  error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(body)",
    message:
      issue.code === "unrecognized_keys" ? `unknown field(s): ${issue.keys.join(", ")}` : issue.message,
  }));

const parseWith = <T>(schema: z.ZodType<T>, input: unknown, what: string): T => {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new ValidationError(`Invalid ${what}`, toDetails(result.error));
  }
  return result.data;
};

const checkMetadataSize = (value: JsonObject | undefined, limits: Limits): JsonObject => {
  const meta = value ?? {};
  if (byteLength(JSON.stringify(meta)) > limits.maxMetadataBytes) {
    throw new PayloadTooLargeError("metadata_too_large", `metadata exceeds ${limits.maxMetadataBytes} bytes`);
  }
  return meta;
};

/**
 * `client_message_id` in the body and an `Idempotency-Key` header mean the same thing; when both
 * are given they must agree.
 */
export const parsePostMessage = (
  body: unknown,
  limits: Limits,
  idempotencyHeader?: string,
): PostMessageInput => {
  const input = parseWith(postMessageSchema, body, "message");
  const streaming = input.state === "streaming";
  if (!streaming && input.message.trim().length === 0) {
    throw new ValidationError("Invalid message", [{ path: "message", message: "must not be empty" }]);
  }
  if (streaming && input.role !== undefined && input.role !== "assistant") {
    throw new ValidationError("Invalid message", [
      { path: "role", message: "only an assistant reply can stream" },
    ]);
  }
  if (byteLength(input.message) > limits.maxMessageBytes) {
    throw new PayloadTooLargeError("message_too_large", `message exceeds ${limits.maxMessageBytes} bytes`);
  }
  const meta = checkMetadataSize(input.metadata, limits);
  let clientMessageId = input.client_message_id;
  if (idempotencyHeader !== undefined) {
    if (!CLIENT_MESSAGE_ID.test(idempotencyHeader)) {
      throw new ValidationError("Invalid message", [
        { path: "Idempotency-Key", message: "must be 1-128 characters of A-Z a-z 0-9 . _ : -" },
      ]);
    }
    if (clientMessageId !== undefined && clientMessageId !== idempotencyHeader) {
      throw new BadRequestError(
        "idempotency_key_mismatch",
        "Idempotency-Key header and client_message_id differ",
      );
    }
    clientMessageId = idempotencyHeader;
  }
  return { content: input.message, metadata: meta, clientMessageId, role: input.role, streaming };
};

const deltaSchema = z.strictObject({
  index: z.number().int().min(0).max(1_000_000_000),
  text,
});

export interface DeltaInput {
  readonly index: number;
  readonly text: string;
}

/** A delta of a streamed reply (its size is checked against the stream's limits by the core). */
export const parseDelta = (body: unknown): DeltaInput => parseWith(deltaSchema, body, "delta");

const FINISH_REASON = /^[a-z][a-z0-9_]{0,31}$/;
/** Set by the server only: a stop (cancel) or the idle timeout. */
const RESERVED_FINISH_REASONS = new Set(["cancelled", "timeout"]);

const endingSchema = z.strictObject({
  finish_reason: z
    .string()
    .regex(FINISH_REASON, "must be 1-32 characters of a-z 0-9 _ (for example stop, length, error)"),
  content: text.optional(),
  usage: z
    .strictObject({
      model: text.max(128).optional(),
      input_tokens: z.number().int().min(0).max(1e12).optional(),
      output_tokens: z.number().int().min(0).max(1e12).optional(),
    })
    .optional(),
  error: z.strictObject({ code: text.max(64).optional(), message: text.max(1000).optional() }).optional(),
  metadata: metadata.optional(),
});

export interface EndingInput {
  readonly state: "complete" | "error";
  readonly finishReason: string;
  readonly content?: string;
  readonly usage?: { model?: string; input_tokens?: number; output_tokens?: number };
  readonly error?: { code?: string; message?: string };
  readonly metadata?: JsonObject;
}

/** POST /api/messages/{id}/complete: `finish_reason: "error"` (or an `error` object) ends it in error. */
export const parseEnding = (body: unknown, limits: Limits): EndingInput => {
  const input = parseWith(endingSchema, body, "completion");
  if (RESERVED_FINISH_REASONS.has(input.finish_reason)) {
    throw new ValidationError("Invalid completion", [
      {
        path: "finish_reason",
        message: `${input.finish_reason} is set by the server (use the cancel route)`,
      },
    ]);
  }
  const failed = input.finish_reason === "error" || input.error !== undefined;
  return {
    state: failed ? "error" : "complete",
    finishReason: input.finish_reason,
    ...(input.content !== undefined ? { content: input.content } : {}),
    ...(input.usage !== undefined ? { usage: input.usage } : {}),
    ...(failed ? { error: input.error ?? { code: "agent_error" } } : {}),
    ...(input.metadata !== undefined ? { metadata: checkMetadataSize(input.metadata, limits) } : {}),
  };
};

const cancelSchema = z.strictObject({ reason: text.max(200).optional() });

export const parseCancel = (body: unknown): { reason: string | undefined } => ({
  reason: parseWith(cancelSchema, body ?? {}, "cancel request").reason,
});

const createThreadSchema = z.strictObject({
  title: text.nullable().optional(),
  metadata: metadata.optional(),
});

export interface CreateThreadInput {
  readonly title: string | null;
  readonly metadata: JsonObject;
}

export const parseCreateThread = (body: unknown, limits: Limits): CreateThreadInput => {
  const input = parseWith(createThreadSchema, body ?? {}, "thread");
  const title = input.title ?? null;
  if (title !== null && title.length > limits.maxTitleLength) {
    throw new ValidationError("Invalid thread", [
      { path: "title", message: `must be at most ${limits.maxTitleLength} characters` },
    ]);
  }
  return { title, metadata: checkMetadataSize(input.metadata, limits) };
};

const recoverSchema = z.strictObject({ thread_id: z.string() });

export const parseRecoverCache = (body: unknown): { threadId: string } => {
  const input = parseWith(recoverSchema, body, "request");
  return { threadId: parseId(input.thread_id, "thread_id") };
};

const cursorValue = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const historySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).optional(),
  before: cursorValue.optional(),
  after: cursorValue.optional(),
});

export const parseHistoryQuery = (
  query: Record<string, string | undefined>,
  limits: Limits,
): HistoryQuery => {
  const input = parseWith(historySchema, query, "query");
  if (input.before !== undefined && input.after !== undefined) {
    throw new BadRequestError("invalid_cursor", "use either before or after, not both");
  }
  if (input.limit !== undefined && input.limit > limits.maxPageSize) {
    throw new ValidationError("Invalid query", [
      { path: "limit", message: `must be at most ${limits.maxPageSize}` },
    ]);
  }
  const limit = input.limit ?? limits.defaultPageSize;
  return input.after !== undefined
    ? { direction: "forward", after: input.after, limit }
    : { direction: "backward", ...(input.before !== undefined ? { before: input.before } : {}), limit };
};

const threadListSchema = z.strictObject({
  limit: z.coerce.number().int().min(1).optional(),
  cursor: z.string().max(200).optional(),
  /** "true": the archived threads only; "any": all; default: the threads not archived. */
  archived: z.enum(["true", "false", "any"]).optional(),
  /** Service principals only: the threads whose `metadata.agent` is this value. */
  agent: z
    .string()
    .min(1)
    .max(128)
    .refine(storableString, "must not contain NUL characters or unpaired surrogates")
    .optional(),
});

export interface ThreadListInput {
  readonly limit: number;
  readonly cursor?: string;
  readonly agent?: string;
  readonly archived?: ArchivedFilter;
}

const ARCHIVED_QUERY = { true: "only", false: "exclude", any: "include" } as const;

export const parseThreadListQuery = (
  query: Record<string, string | undefined>,
  limits: Limits,
): ThreadListInput => {
  const input = parseWith(threadListSchema, query, "query");
  const limit = Math.min(input.limit ?? limits.defaultPageSize, limits.maxPageSize);
  return {
    limit,
    ...(input.cursor !== undefined ? { cursor: input.cursor } : {}),
    ...(input.agent !== undefined ? { agent: input.agent } : {}),
    ...(input.archived !== undefined ? { archived: ARCHIVED_QUERY[input.archived] } : {}),
  };
};

const threadChangeSchema = z.strictObject({
  title: text.nullable().optional(),
  metadata: metadata.optional(),
  archived: z.boolean().optional(),
});

/** PATCH /api/threads/{id}: at least one of title, metadata (replaced whole) and archived. */
export const parseThreadChange = (body: unknown, limits: Limits): ThreadChange => {
  const input = parseWith(threadChangeSchema, body, "thread change");
  if (input.title === undefined && input.metadata === undefined && input.archived === undefined) {
    throw new ValidationError("Invalid thread change", [
      { path: "(body)", message: "name at least one of title, metadata and archived" },
    ]);
  }
  if (input.title !== undefined && input.title !== null && input.title.length > limits.maxTitleLength) {
    throw new ValidationError("Invalid thread change", [
      { path: "title", message: `must be at most ${limits.maxTitleLength} characters` },
    ]);
  }
  return {
    ...(input.title !== undefined ? { title: input.title } : {}),
    ...(input.metadata !== undefined ? { metadata: checkMetadataSize(input.metadata, limits) } : {}),
    ...(input.archived !== undefined ? { archived: input.archived } : {}),
  };
};

const exportSchema = z.strictObject({ format: z.enum(["json", "markdown"]).optional() });

export const parseExportQuery = (
  query: Record<string, string | undefined>,
): { format: "json" | "markdown" } => ({
  format: parseWith(exportSchema, query, "query").format ?? "json",
});

/** WebSocket frames: `{action, ...}` with the same rules as the HTTP routes. */
const requestId = z.string().max(128).optional();

const subscribeSchema = z.strictObject({
  action: z.literal("subscribe"),
  threadId: z.string(),
  sinceSeq: cursorValue.optional(),
  epoch: z.string().min(1).max(64).optional(),
  pos: cursorValue.optional(),
  request_id: requestId,
});

export interface SubscribeInput {
  readonly threadId: string;
  /** The stream position to resume from (epoch and pos come together). */
  readonly position: { readonly epoch: string; readonly pos: number } | undefined;
  /** The settled seq to catch up from when the position cannot be replayed. */
  readonly sinceSeq: number | undefined;
  readonly requestId: string | undefined;
}

export const parseSubscribe = (frame: unknown): SubscribeInput => {
  const input = parseWith(subscribeSchema, frame, "subscribe request");
  if ((input.epoch === undefined) !== (input.pos === undefined)) {
    throw new ValidationError("Invalid subscribe request", [
      { path: input.epoch === undefined ? "epoch" : "pos", message: "epoch and pos come together" },
    ]);
  }
  return {
    threadId: parseId(input.threadId, "threadId"),
    position:
      input.epoch !== undefined && input.pos !== undefined
        ? { epoch: input.epoch, pos: input.pos }
        : undefined,
    sinceSeq: input.sinceSeq,
    requestId: input.request_id,
  };
};

const unsubscribeSchema = z.strictObject({
  action: z.literal("unsubscribe"),
  threadId: z.string(),
  request_id: requestId,
});

export const parseUnsubscribe = (frame: unknown): { threadId: string; requestId: string | undefined } => {
  const input = parseWith(unsubscribeSchema, frame, "unsubscribe request");
  return { threadId: parseId(input.threadId, "threadId"), requestId: input.request_id };
};

const wsAppendSchema = z.strictObject({
  action: z.literal("appendDelta"),
  messageId: z.string(),
  index: z.unknown(),
  text: z.unknown(),
  request_id: requestId,
});

export const parseWsAppendDelta = (
  frame: unknown,
): { messageId: string; requestId: string | undefined; delta: DeltaInput } => {
  const {
    messageId,
    request_id,
    index,
    text: deltaText,
  } = parseWith(wsAppendSchema, frame, "appendDelta request");
  return {
    messageId: parseId(messageId, "messageId"),
    requestId: request_id,
    delta: parseDelta({ index, text: deltaText }),
  };
};

const wsSendSchema = z.looseObject({
  action: z.literal("sendMessage"),
  threadId: z.string(),
  request_id: requestId,
});

export const parseWsSendMessage = (
  frame: unknown,
  limits: Limits,
): { threadId: string; requestId: string | undefined; input: PostMessageInput } => {
  const envelope = parseWith(wsSendSchema, frame, "sendMessage request");
  const { action: _action, threadId, request_id, ...body } = envelope;
  return {
    threadId: parseId(threadId, "threadId"),
    requestId: request_id,
    input: parsePostMessage(body, limits),
  };
};

// ---------------------------------------------------------------- feedback and analytics

/** Blank is none. */
const optionalNote = (max: number) =>
  text
    .max(max, `must be at most ${max} characters`)
    .nullable()
    .optional()
    .transform((v) => (v === undefined || v === null || v.trim() === "" ? null : v));

const feedbackSchema = z.strictObject({
  rating: z.enum(["up", "down"]),
  reason: optionalNote(200),
  comment: optionalNote(2000),
});

/** PUT /api/messages/{id}/feedback: the whole feedback (a field left out is cleared). */
export const parseFeedback = (
  body: unknown,
): { rating: "up" | "down"; reason: string | null; comment: string | null } =>
  parseWith(feedbackSchema, body, "feedback");

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86_400_000;
/** The longest range of days the analytics read covers at once. */
export const MAX_ANALYTICS_DAYS = 366;
export const DEFAULT_ANALYTICS_DAYS = 7;

const calendarDay = z.string().refine((v) => {
  const ms = Date.parse(`${v}T00:00:00Z`);
  // 2023-02-29 parses as 2023-03-01: the day must come back as it was written. ClickHouse's
  // DateTime covers 1970 to 2105.
  return (
    DAY.test(v) &&
    !Number.isNaN(ms) &&
    new Date(ms).toISOString().slice(0, 10) === v &&
    v >= "1970-01-01" &&
    v <= "2099-12-31"
  );
}, "must be a date YYYY-MM-DD (1970-01-01 to 2099-12-31)");

const analyticsQuerySchema = z.strictObject({
  from: calendarDay.optional(),
  to: calendarDay.optional(),
  group_by: z.enum(["day", "model"]).optional(),
});

const dayMs = (day: string): number => Date.parse(`${day}T00:00:00Z`);
const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * GET /api/admin/analytics?from&to&group_by: days in UTC, both included; `to` defaults to today,
 * `from` to the 7 days ending with `to`; `group_by` to `day`.
 */
export const parseAnalyticsQuery = (
  query: Readonly<Record<string, string | undefined>>,
  nowMs: number,
): { from: string; to: string; groupBy: "day" | "model" } => {
  const input = parseWith(analyticsQuerySchema, query, "query");
  const to = input.to ?? dayOf(nowMs);
  const from = input.from ?? dayOf(dayMs(to) - (DEFAULT_ANALYTICS_DAYS - 1) * DAY_MS);
  if (dayMs(from) > dayMs(to)) {
    throw new ValidationError("Invalid query", [{ path: "from", message: "must not be after to" }]);
  }
  if ((dayMs(to) - dayMs(from)) / DAY_MS + 1 > MAX_ANALYTICS_DAYS) {
    throw new ValidationError("Invalid query", [
      { path: "to", message: `the range is at most ${MAX_ANALYTICS_DAYS} days` },
    ]);
  }
  return { from, to, groupBy: input.group_by ?? "day" };
};
