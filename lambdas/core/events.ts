/**
 * Frames sent to WebSocket clients. API Gateway refuses frames over 128 KB; we never send one over
 * 32 KB: a message too big for a frame is announced without its body, to be fetched over HTTP.
 */
import type { Message } from "./model.ts";

export const MAX_FRAME_BYTES = 32 * 1024;

const fits = (frame: string): boolean => Buffer.byteLength(frame, "utf8") <= MAX_FRAME_BYTES;

export const messageCreatedFrame = (message: Message, extra: Record<string, unknown> = {}): string => {
  const full = JSON.stringify({ type: "message.created", ...extra, message });
  if (fits(full)) return full;
  const { content: _content, metadata: _metadata, ...header } = message;
  return JSON.stringify({ type: "message.created", ...extra, truncated: true, message: header });
};

export const errorFrame = (code: string, message: string, requestId?: string): string =>
  JSON.stringify({
    type: "error",
    code,
    message,
    ...(requestId !== undefined ? { request_id: requestId } : {}),
  });

export const eventFrame = (type: string, body: Record<string, unknown>, requestId?: string): string =>
  JSON.stringify({ type, ...body, ...(requestId !== undefined ? { request_id: requestId } : {}) });
