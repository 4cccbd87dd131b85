/**
 * Live updates over the WebSocket API, by the README's resume protocol ("Resuming without missing
 * anything"): the client keeps the thread's `{epoch, pos, settled}`, subscribes with them, applies
 * `message.created` in `pos` order (a gap is waited for 300 ms, then it subscribes again), catches
 * up by seq over HTTP when the server cannot replay, and reconnects by itself when the socket
 * drops. Streamed replies: deltas are applied in index order; a gap not filled in 300 ms is
 * read back with GET /api/messages/{id}.
 */
import type { Api, Message, Thread } from "./api.ts";

type Frame = Record<string, unknown> & { type: string };

export type ConnectionState = "connecting" | "online" | "offline";

export interface Cursor {
  epoch: string | null;
  pos: number;
  settled: number;
}

export interface LiveEvents {
  /** A message to keep by id (new, replayed, corrected, or a reply's new state or content). */
  message(message: Message): void;
  threadUpdated(thread: Thread): void;
  threadDeleted(threadId: string): void;
  state(state: ConnectionState): void;
}

const GAP_MS = 300;
const PING_MS = 25_000;

export class Live {
  private socket: WebSocket | undefined;
  private state: ConnectionState = "offline";
  private threadId: string | null = null;
  private cursor: Cursor = { epoch: null, pos: 0, settled: 0 };
  private readonly held = new Map<number, Frame>();
  private gapTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private retries = 0;
  private closed = false;
  private requestNo = 0;
  /** Replies as this client has them: content and the last delta index applied. */
  private readonly replies = new Map<string, Message>();
  private readonly deltas = new Map<string, Map<number, string>>();
  private readonly deltaTimers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly wsUrl: string,
    private readonly token: () => string | null,
    private readonly api: Api,
    private readonly events: LiveEvents,
  ) {}

  connect(): void {
    this.closed = false;
    const token = this.token();
    if (token === null) return;
    this.setState("connecting");
    const socket = new WebSocket(`${this.wsUrl}?token=${encodeURIComponent(token)}`);
    this.socket = socket;
    socket.onopen = () => {
      this.retries = 0;
      this.setState("online");
      this.pingTimer = setInterval(() => this.send({ action: "ping" }), PING_MS);
      if (this.threadId !== null) this.subscribe();
    };
    socket.onmessage = (event) => this.receive(JSON.parse(String(event.data)) as Frame);
    socket.onclose = () => {
      if (this.socket !== socket) return;
      clearInterval(this.pingTimer);
      this.socket = undefined;
      this.setState("offline");
      if (!this.closed) this.reconnectLater();
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.socket?.close();
    this.socket = undefined;
    this.setState("offline");
  }

  /** Follows a thread from this cursor (the newest history page's), replacing the one followed. */
  follow(threadId: string, cursor: Cursor, known: readonly Message[]): void {
    if (this.threadId !== null && this.threadId !== threadId)
      this.send({ action: "unsubscribe", threadId: this.threadId });
    this.threadId = threadId;
    this.cursor = { ...cursor };
    this.held.clear();
    for (const m of known) if (m.state === "streaming") this.replies.set(m.id, m);
    if (this.state === "online") this.subscribe();
  }

  unfollow(): void {
    if (this.threadId !== null) this.send({ action: "unsubscribe", threadId: this.threadId });
    this.threadId = null;
  }

  /** The network came back (the browser says so): try now rather than at the next backoff. */
  retryNow(): void {
    if (this.socket !== undefined || this.closed) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  private reconnectLater(): void {
    const delay = Math.min(5000, 250 * 2 ** this.retries++);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private setState(state: ConnectionState): void {
    this.state = state;
    this.events.state(state);
  }

  private send(frame: Record<string, unknown>): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  private subscribe(): void {
    if (this.threadId === null) return;
    clearTimeout(this.gapTimer);
    this.held.clear();
    this.send({
      action: "subscribe",
      threadId: this.threadId,
      request_id: `sub-${++this.requestNo}`,
      ...(this.cursor.epoch !== null ? { epoch: this.cursor.epoch, pos: this.cursor.pos } : {}),
      sinceSeq: this.cursor.settled,
    });
  }

  private receive(frame: Frame): void {
    const threadId = (frame.thread_id ??
      frame.threadId ??
      (frame.message as Message | undefined)?.thread_id) as string | undefined;
    switch (frame.type) {
      case "subscribed":
        if (threadId === this.threadId) void this.subscribed(frame);
        return;
      case "message.created":
        if (threadId === this.threadId) this.created(frame);
        return;
      case "message.snapshot":
      case "message.completed":
      case "message.cancelled":
        if (threadId === this.threadId) this.keep(frame.message as Message);
        return;
      case "message.delta":
        if (threadId === this.threadId)
          this.delta(frame.message_id as string, frame.index as number, frame.text as string);
        return;
      case "thread.updated":
        this.events.threadUpdated(frame.thread as Thread);
        return;
      case "thread.deleted":
        if (threadId === this.threadId) this.threadId = null;
        this.events.threadDeleted(threadId as string);
        return;
      case "error":
        if (frame.code === "connection_unknown") this.socket?.close();
        return;
      default:
        return;
    }
  }

  private async subscribed(frame: Frame): Promise<void> {
    const threadId = this.threadId as string;
    // The server could not replay from our position: catch up by seq, page by page.
    let cursor = frame.has_more === true ? (frame.next_cursor as number) : null;
    while (cursor !== null && this.threadId === threadId) {
      try {
        const { body } = await this.api.history(threadId, { after: cursor, limit: 100 });
        for (const m of body.messages) this.keep(m);
        cursor = body.next_cursor;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    this.cursor.epoch = frame.epoch as string;
    this.cursor.pos = frame.pos as number;
    this.cursor.settled = Math.max(this.cursor.settled, frame.settled as number);
    this.drain();
  }

  private created(frame: Frame): void {
    const pos = frame.pos as number | undefined;
    if (frame.epoch !== undefined && this.cursor.epoch !== null && frame.epoch !== this.cursor.epoch) {
      this.subscribe();
      return;
    }
    if (pos === undefined || frame.replay === true || pos <= this.cursor.pos) {
      this.keep(frame.message as Message);
      return;
    }
    this.held.set(pos, frame);
    this.drain();
  }

  /** Applies held events while the next position is there; waits briefly for a missing one. */
  private drain(): void {
    clearTimeout(this.gapTimer);
    for (;;) {
      const next = this.held.get(this.cursor.pos + 1);
      if (next === undefined) break;
      this.held.delete(this.cursor.pos + 1);
      this.cursor.pos++;
      if (typeof next.settled === "number") this.cursor.settled = Math.max(this.cursor.settled, next.settled);
      this.keep(next.message as Message);
    }
    if (this.held.size > 0) this.gapTimer = setTimeout(() => this.subscribe(), GAP_MS);
  }

  private keep(message: Message): void {
    if (message.state === "streaming") {
      const mine = this.replies.get(message.id);
      // A snapshot or replay older than what this client applied already changes nothing.
      if (mine !== undefined && (mine.delta_index ?? -1) > (message.delta_index ?? -1)) return;
      this.replies.set(message.id, { ...message, delta_index: message.delta_index ?? -1 });
      this.applyHeldDeltas(message.id);
    } else {
      this.replies.delete(message.id);
      this.deltas.delete(message.id);
      clearTimeout(this.deltaTimers.get(message.id));
    }
    this.events.message(this.replies.get(message.id) ?? message);
  }

  private delta(messageId: string, index: number, text: string): void {
    const held = this.deltas.get(messageId) ?? new Map<number, string>();
    held.set(index, text);
    this.deltas.set(messageId, held);
    this.applyHeldDeltas(messageId);
  }

  private applyHeldDeltas(messageId: string): void {
    const reply = this.replies.get(messageId);
    const held = this.deltas.get(messageId);
    if (held === undefined) return;
    if (reply === undefined) {
      this.waitForDeltas(messageId);
      return;
    }
    let current = reply;
    for (const index of [...held.keys()]) if (index <= (current.delta_index ?? -1)) held.delete(index);
    for (;;) {
      const next = (current.delta_index ?? -1) + 1;
      const text = held.get(next);
      if (text === undefined) break;
      held.delete(next);
      current = { ...current, content: current.content + text, delta_index: next };
    }
    if (current !== reply) {
      this.replies.set(messageId, current);
      this.events.message(current);
    }
    if (held.size > 0) this.waitForDeltas(messageId);
    else clearTimeout(this.deltaTimers.get(messageId));
  }

  /** A gap in a reply's deltas: not filled within 300 ms, the reply is read back whole. */
  private waitForDeltas(messageId: string): void {
    if (this.deltaTimers.has(messageId)) return;
    this.deltaTimers.set(
      messageId,
      setTimeout(async () => {
        this.deltaTimers.delete(messageId);
        try {
          const { body } = await this.api.message(messageId);
          this.keep(body);
        } catch {
          // The next delta or ending brings it.
        }
      }, GAP_MS),
    );
  }
}
