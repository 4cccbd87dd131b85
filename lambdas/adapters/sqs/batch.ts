/** SendMessageBatch limits, and the error for entries SQS refused. */

/** Below SQS's 256 KiB limit per message and per batch request, with room for attributes. */
export const MAX_REQUEST_BYTES = 240 * 1024;
export const MAX_ENTRIES = 10;

/** Splits items, in order, into SendMessageBatch requests within the entry and size limits. */
export const batchRequests = <T>(items: readonly T[], bytesOf: (item: T) => number): T[][] => {
  const requests: T[][] = [];
  let group: T[] = [];
  let size = 0;
  for (const item of items) {
    const bytes = bytesOf(item);
    if (group.length > 0 && (group.length === MAX_ENTRIES || size + bytes > MAX_REQUEST_BYTES)) {
      requests.push(group);
      group = [];
      size = 0;
    }
    group.push(item);
    size += bytes;
  }
  if (group.length > 0) requests.push(group);
  return requests;
};

/** SQS refused entries: the sender's fault (bad content) is not an outage; anything else is. */
export class RejectedEntriesError extends Error {
  override readonly name = "RejectedEntriesError";
  constructor(
    message: string,
    readonly senderFault: boolean,
  ) {
    super(message);
  }
}
