/**
 * A WebSocket subscriber that follows the README's resume protocol, and nothing more:
 *
 *  - it keeps `{epoch, pos, settled}` for its thread (from the newest history page, the
 *    `subscribed` frame and the live events it has applied in order);
 *  - it subscribes with them; the server replays from `pos` (recovered) or, for another epoch, the
 *    client catches up by seq from `settled`, paging over HTTP while `has_more`;
 *  - live `message.created` events are applied in `pos` order; a missing pos is waited for
 *    briefly, then the client subscribes again; an event of another epoch makes it subscribe again;
 *  - it pings; `connection_unknown` or a dropped socket makes it reconnect and subscribe again;
 *  - every message is kept by id (a repeat replaces it: the server may correct a message).
 */
import WebSocket from "ws";
import type { Message } from "../../lambdas/core/model.ts";

type Frame = Record<string, unknown> & { type: string };

export interface ResumingClientOptions {
  readonly wsUrl: string;
  readonly httpUrl: string;
  readonly token: string;
  readonly threadId: string;
  /** How long a missing pos is waited for before subscribing again. */
  readonly gapTimeoutMs?: number;
  readonly pingEveryMs?: number;
}

export class ResumingClient {
  /** Every message received, by id. */
  readonly messages = new Map<string, Message>();
  epoch: string | null = null;
  pos = 0;
  settled = 0;
  /** Counters for the test's report. */
  readonly stats = { connects: 0, subscribes: 0, recovered: 0, caughtUpBySeq: 0, gaps: 0, repeats: 0 };

  private socket: WebSocket | undefined;
  private readonly pending = new Map<number, Frame>();
  private gapTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private offlineUntil = 0;
  private subscribing = false;
  private resubscribeAgain = false;
  private counter = 0;
  private subscribedWaiters: (() => void)[] = [];

  constructor(private readonly options: ResumingClientOptions) {}

  /** Loads the newest history page (the starting cursor), then connects and subscribes. */
  async start(): Promise<void> {
    const page = await this.get(`/api/threads/${this.options.threadId}/messages?limit=50`);
    for (const m of page.messages as Message[]) this.keep(m);
    if (typeof page.epoch === "string" && typeof page.pos === "number") {
      this.epoch = page.epoch;
      this.pos = page.pos;
    }
    this.settled = page.settled as number;
    await this.connect();
  }

  /** Drops the connection as a network would; the client reconnects by itself. */
  drop(): void {
    this.socket?.terminate();
  }

  /** Goes offline for `ms` (messages keep flowing meanwhile), then reconnects and resumes. */
  away(ms: number): void {
    this.offlineUntil = Date.now() + ms;
    this.drop();
  }

  /** Resolves once a subscription that started after this call has finished catching up. */
  async synced(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.subscribedWaiters.push(resolve);
      void this.subscribe();
    });
  }

  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.gapTimer);
    clearInterval(this.pingTimer);
    const socket = this.socket;
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.close();
    });
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const offline = this.offlineUntil - Date.now();
    if (offline > 0) await new Promise((resolve) => setTimeout(resolve, offline));
    const url = `${this.options.wsUrl}?token=${encodeURIComponent(this.options.token)}`;
    for (;;) {
      try {
        this.socket = await open(url);
        break;
      } catch {
        if (this.closed) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    this.stats.connects++;
    const socket = this.socket;
    socket.on("message", (data) => this.onFrame(JSON.parse(data.toString()) as Frame));
    socket.on("close", () => {
      if (this.closed || socket !== this.socket) return;
      void this.connect();
    });
    socket.on("error", () => undefined);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.send({ action: "ping" }), this.options.pingEveryMs ?? 250);
    // A subscription sent on the old connection may never have been answered.
    this.subscribing = false;
    await this.subscribe();
  }

  private send(frame: Record<string, unknown>): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  private async subscribe(): Promise<void> {
    if (this.subscribing) {
      this.resubscribeAgain = true;
      return;
    }
    this.subscribing = true;
    this.stats.subscribes++;
    this.send({
      action: "subscribe",
      threadId: this.options.threadId,
      ...(this.epoch !== null ? { epoch: this.epoch, pos: this.pos } : {}),
      sinceSeq: this.settled,
      request_id: `s${++this.counter}`,
    });
  }

  private onFrame(frame: Frame): void {
    if (frame.type === "error") {
      if (frame.code === "connection_unknown") this.drop();
      else if (typeof frame.request_id === "string" && frame.request_id.startsWith("s")) {
        // The subscribe itself failed (a tier outage): try again shortly.
        this.subscribing = false;
        setTimeout(() => void this.subscribe(), 100);
      }
      return;
    }
    if (frame.type === "subscribed") {
      void this.onSubscribed(frame);
      return;
    }
    if (frame.type !== "message.created") return;
    const message = frame.message as Message;
    if (frame.truncated === true) return;
    this.keep(message);
    if (typeof frame.pos !== "number" || typeof frame.epoch !== "string") return;
    if (this.subscribing && frame.replay !== true) {
      // Live while catching up: applied once the subscription says where it starts.
      this.pending.set(frame.pos, frame);
      return;
    }
    if (frame.epoch !== this.epoch) {
      if (!this.subscribing) void this.subscribe();
      return;
    }
    this.pending.set(frame.pos, frame);
    this.applyInOrder();
  }

  private async onSubscribed(frame: Frame): Promise<void> {
    if (frame.recovered === true) this.stats.recovered++;
    else this.stats.caughtUpBySeq++;
    let cursor = frame.next_cursor as number | undefined;
    let failures = 0;
    while (frame.has_more === true && cursor !== undefined && cursor !== null) {
      const page = await this.get(
        `/api/threads/${this.options.threadId}/messages?after=${cursor}&limit=100`,
      ).catch(() => null);
      if (page === null) {
        // A page that failed (a 503 while a tier is away) is asked for again; a client that gave
        // up here and took the subscription's position would skip what it did not read.
        if (this.closed) return;
        if (++failures > 100) throw new Error(`catch-up page after ${cursor} failed 100 times`);
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      for (const m of page.messages as Message[]) this.keep(m);
      cursor = page.next_cursor as number | undefined;
    }
    this.epoch = frame.epoch as string;
    this.pos = frame.pos as number;
    this.settled = Math.max(this.settled, frame.settled as number);
    for (const p of [...this.pending.keys()]) {
      const pending = this.pending.get(p);
      if (p <= this.pos || pending?.epoch !== this.epoch) this.pending.delete(p);
    }
    this.subscribing = false;
    if (this.resubscribeAgain) {
      this.resubscribeAgain = false;
      void this.subscribe();
      return;
    }
    this.applyInOrder();
    if (this.pending.size === 0) for (const resolve of this.subscribedWaiters.splice(0)) resolve();
  }

  /** Applies pending events while the next pos is there; waits briefly for a missing one. */
  private applyInOrder(): void {
    for (;;) {
      const next = this.pending.get(this.pos + 1);
      if (next === undefined) break;
      this.pending.delete(this.pos + 1);
      this.pos += 1;
      if (typeof next.settled === "number") this.settled = Math.max(this.settled, next.settled);
    }
    for (const p of [...this.pending.keys()]) if (p <= this.pos) this.pending.delete(p);
    clearTimeout(this.gapTimer);
    if (this.pending.size > 0) {
      this.stats.gaps++;
      this.gapTimer = setTimeout(() => void this.subscribe(), this.options.gapTimeoutMs ?? 300);
    }
  }

  private keep(message: Message): void {
    if (this.messages.has(message.id)) this.stats.repeats++;
    this.messages.set(message.id, message);
  }

  private async get(path: string): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.options.httpUrl}${path}`, {
      headers: { authorization: `Bearer ${this.options.token}` },
    });
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  }
}

const open = (url: string): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
    socket.once("unexpected-response", () => reject(new Error("refused")));
  });
