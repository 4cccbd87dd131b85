/**
 * Queue bodies. Consumers validate what they receive: a record that does not parse is poison (it
 * will never succeed) and is left to go to the dead-letter queue.
 */
import * as z from "zod";
import { describeError, isTierUnavailable } from "./errors.ts";
import { MESSAGE_ROLES, MESSAGE_STATES, type Message } from "./model.ts";
import { FEEDBACK_RATINGS, type FeedbackEvent, type PersistEnvelope } from "./ports.ts";

const messageSchema = z.strictObject({
  id: z.string().uuid(),
  thread_id: z.string().uuid(),
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  role: z.enum(MESSAGE_ROLES),
  user_id: z.string().min(1),
  content: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  client_message_id: z.string().nullable(),
  created_at: z.number().int(),
  created_at_ms: z.number().int(),
  state: z.enum(MESSAGE_STATES).optional(),
  finish_reason: z.string().nullable().optional(),
  usage: z
    .strictObject({
      model: z.string().optional(),
      input_tokens: z.number().int().min(0).optional(),
      output_tokens: z.number().int().min(0).optional(),
    })
    .nullable()
    .optional(),
  error: z
    .strictObject({ code: z.string().optional(), message: z.string().optional() })
    .nullable()
    .optional(),
  first_delta_ms: z.number().int().nullable().optional(),
  duration_ms: z.number().int().nullable().optional(),
});

const persistEnvelopeSchema = z.union([
  z.strictObject({
    v: z.literal(1),
    message: messageSchema,
    owner_id: z.string().min(1),
    accepted_at_ms: z.number().int(),
  }),
  z.strictObject({
    v: z.literal(1),
    kind: z.literal("stream_check"),
    thread_id: z.string().uuid(),
    message_id: z.string().uuid(),
  }),
]);

const feedbackEventSchema = z.strictObject({
  message_id: z.string().uuid(),
  thread_id: z.string().uuid(),
  user_id: z.string().min(1),
  rating: z.enum(FEEDBACK_RATINGS),
  reason: z.string().nullable(),
  model: z.string(),
  deleted: z.boolean(),
  message_created_at: z.number().int().min(0),
  updated_at_ms: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

/**
 * `{v: 1, messages?: [...], feedback?: [...]}`, at least one entry (envelopes of persisted messages
 * have been `{v: 1, messages}` from the start). Each entry is checked on its own: one bad entry
 * must not take the others down with it.
 */
const analyticsEnvelopeSchema = z
  .strictObject({
    v: z.literal(1),
    messages: z.array(z.unknown()).optional(),
    feedback: z.array(z.unknown()).optional(),
  })
  .refine(
    (e) => (e.messages?.length ?? 0) + (e.feedback?.length ?? 0) > 0,
    "an analytics envelope carries at least one message or feedback entry",
  );

export class InvalidRecordError extends Error {
  override readonly name = "InvalidRecordError";
}

const parseJson = (body: string): unknown => {
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new InvalidRecordError("record body is not JSON", { cause: error });
  }
};

const parseWith = <T>(schema: z.ZodType<T>, body: string): T => {
  const result = schema.safeParse(parseJson(body));
  if (!result.success)
    throw new InvalidRecordError(`record does not match its schema: ${result.error.message}`);
  return result.data;
};

export const parsePersistEnvelope = (body: string): PersistEnvelope =>
  parseWith(persistEnvelopeSchema, body) as PersistEnvelope;

/** An analytics envelope's valid entries, and why each invalid one is invalid. */
export interface AnalyticsBatch {
  readonly messages: Message[];
  /** Only when the envelope carried valid feedback changes (an envelope of messages reads as before). */
  readonly feedback?: FeedbackEvent[];
  readonly invalid: string[];
}

export const parseAnalyticsEnvelope = (body: string): AnalyticsBatch => {
  const envelope = parseWith(analyticsEnvelopeSchema, body);
  const messages: Message[] = [];
  const feedback: FeedbackEvent[] = [];
  const invalid: string[] = [];
  (envelope.messages ?? []).forEach((candidate, i) => {
    const result = messageSchema.safeParse(candidate);
    if (result.success) messages.push(result.data as Message);
    else invalid.push(`message ${i} does not match its schema: ${result.error.message}`);
  });
  (envelope.feedback ?? []).forEach((candidate, i) => {
    const result = feedbackEventSchema.safeParse(candidate);
    if (result.success) feedback.push(result.data);
    else invalid.push(`feedback ${i} does not match its schema: ${result.error.message}`);
  });
  return { messages, ...(feedback.length > 0 ? { feedback } : {}), invalid };
};

export const serializeAnalyticsEnvelope = (messages: readonly Message[]): string =>
  JSON.stringify({ v: 1, messages });

/** Feedback changes in an analytics envelope: `{v: 1, feedback: [...]}`. */
export const serializeFeedbackEnvelope = (feedback: readonly FeedbackEvent[]): string =>
  JSON.stringify({ v: 1, feedback });

/** One record of an SQS batch, as a consumer sees it. */
export interface QueueRecord {
  readonly id: string;
  readonly body: string;
  /** How often SQS has handed this record out, this time included. */
  readonly receiveCount: number;
}

export interface RecordFailure {
  readonly id: string;
  readonly reason: string;
  /**
   * Transient failures (a tier down) come back after this delay, growing with each receive, so an
   * outage does not exhaust maxReceiveCount; null = poison, retried at the queue's normal pace.
   */
  readonly retryDelaySeconds: number | null;
}

export interface RetryPolicy {
  readonly baseDelaySeconds: number;
  readonly maxDelaySeconds: number;
}

export const retryDelay = (policy: RetryPolicy, receiveCount: number): number =>
  Math.min(policy.maxDelaySeconds, policy.baseDelaySeconds * 2 ** Math.max(0, receiveCount - 1));

/** A failed record as the consumer reports it: a tier outage comes back after a growing delay; anything else is poison. */
export const recordFailure = (policy: RetryPolicy, record: QueueRecord, error: unknown): RecordFailure => ({
  id: record.id,
  reason: describeError(error),
  retryDelaySeconds: isTierUnavailable(error) ? retryDelay(policy, record.receiveCount) : null,
});
