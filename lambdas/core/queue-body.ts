/**
 * Queue records as SQS takes them. SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
 * #x10000-#x10FFFF in a message body, and some SQS emulators also refuse the last range.
 * JSON.stringify already escapes control characters and lone surrogates; here the noncharacters
 * U+FFFE/U+FFFF and every character outside the Basic Multilingual Plane (emoji) are written as
 * JSON \u escapes too. The body stays valid JSON that decodes to the same string, and passes any
 * SQS endpoint.
 */
export const sqsBody = (value: unknown): string =>
  JSON.stringify(value).replace(/[\ufffe\uffff\ud800-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);

/** What a string costs inside a queue record: its bytes once escaped as above. */
export const queueBytes = (text: string): number => Buffer.byteLength(sqsBody(text), "utf8") - 2;
