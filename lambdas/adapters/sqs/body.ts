/**
 * SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF in a message
 * body. JSON.stringify already escapes control characters and lone surrogates; the two
 * noncharacters U+FFFE and U+FFFF are valid in a chat message and are escaped here, so any accepted
 * message can travel through SQS (and decodes back to the same string).
 */
export const sqsBody = (value: unknown): string =>
  JSON.stringify(value).replace(/[\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
