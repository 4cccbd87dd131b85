/**
 * Frames sent to WebSocket clients. API Gateway refuses frames over 128 KB; we never send one over
 * 32 KB: a message too big for a frame is announced without its body, to be fetched over HTTP.
 */
import type { Fanout } from "./fanout.ts";
import { type Message, toWire } from "./model.ts";
import type { LateVisibility } from "./ports.ts";

export const MAX_FRAME_BYTES = 32 * 1024;

const fits = (frame: string): boolean => Buffer.byteLength(frame, "utf8") <= MAX_FRAME_BYTES;

/**
 * `message.created`, with what travels beside the message: its stream position when it went live
 * (`epoch`, `pos`) and the `settled` cursor of that moment (see model.ts StreamPosition),
 * `replay: true` in a catch-up, or the sender's acknowledgement fields.
 */
export const messageCreatedFrame = (message: Message, extra: object = {}): string => {
  return messageFrame("message.created", message, extra);
};

/**
 * A frame that carries a message (`message.created`, `message.completed`, …); one too big for a
 * frame is sent without its content and metadata (`truncated: true`), to be read over HTTP.
 */
export const messageFrame = (type: string, message: Message, extra: object = {}): string => {
  const wire = toWire(message);
  const full = JSON.stringify({ type, ...extra, message: wire });
  if (fits(full)) return full;
  const { content: _content, metadata: _metadata, ...header } = wire;
  return JSON.stringify({ type, ...extra, truncated: true, message: header });
};

/** How a streamed reply's end is announced: `message.cancelled`, else `message.completed`. */
export const endingFrame = (final: Message, extra: object = {}): string =>
  messageFrame(final.state === "cancelled" ? "message.cancelled" : "message.completed", final, extra);

/** `error` with the same body as an HTTP error (`code`, `message`, …, `request_id`). */
export const errorFrame = (body: Record<string, unknown>): string =>
  JSON.stringify({ type: "error", ...body });

export const eventFrame = (type: string, body: Record<string, unknown>, requestId?: string): string =>
  JSON.stringify({ type, ...body, ...(requestId !== undefined ? { request_id: requestId } : {}) });

/**
 * Messages made visible late (by the persist consumer or the outbox relay) go to the subscribers
 * like any live message, each with its own position.
 */
export const announceLate = async (
  fanout: Fanout,
  late: readonly LateVisibility[],
  settled: number,
): Promise<void> => {
  for (const batch of late) {
    if (batch.subscribers.length === 0) continue;
    for (const { message, pos } of batch.messages) {
      const frame = messageCreatedFrame(message, { epoch: batch.epoch, pos, settled });
      await fanout.deliver(batch.threadId, batch.subscribers, frame);
    }
  }
};
