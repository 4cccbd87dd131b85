/**
 * A demo agent for the local stack: a service principal that answers every new user message in
 * the threads that ask for it (`metadata.agent = "demo"`) with a reply streamed word by word. No
 * model and no network beyond the stack: the reply is made up from the question. It uses only the
 * public API, as any external agent would:
 *
 *  - every second, `GET /api/threads?agent=demo` finds the threads (the newest `maxThreads`);
 *  - for each, the newest history page gives the starting position, and one WebSocket connection
 *    subscribes to all of them, following the README's resume rules (a gap or another epoch:
 *    subscribe again; a dropped connection: reconnect and subscribe again);
 *  - a user message created after the agent started is answered once: the reply is opened with a
 *    `client_message_id` derived from the message's id (another run of the agent that sees the
 *    same message finds the reply already there and leaves it), then deltas, then `complete`;
 *  - a delta answered 409 `message_not_streaming` means the user pressed stop: the reply ends there.
 *
 * `npm run demo-agent -- [--api URL] [--ws URL] [--name demo]` runs it against a running stack;
 * `npm start -- --demo-agent` starts it with the local stack.
 */
import { randomUUID } from "node:crypto";
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { LOCAL_DEFAULTS } from "./defaults.ts";
import { mulberry32 } from "./seeded.ts";
import { signDevToken } from "./tokens.ts";

export interface DemoAgentOptions {
  /** The HTTP API, with its `/api` prefix: `http://127.0.0.1:3000/api`. */
  readonly apiUrl: string;
  /** The WebSocket API, without the token: `ws://127.0.0.1:3001/local`. */
  readonly wsUrl: string;
  /** A service principal's token, or where to get a fresh one (asked again on every reconnect). */
  readonly token: string | (() => Promise<string>);
  /** Threads whose `metadata.agent` is this are answered. @default "demo" */
  readonly name?: string;
  /** Pace of the reply, picked anew for every word (jitter). @default [20, 40] */
  readonly wordsPerSecond?: readonly [number, number];
  /** Time to the first word ("thinking"). @default [300, 800] */
  readonly firstWordDelayMs?: readonly [number, number];
  /** How often the threads are listed. @default 1000 */
  readonly pollIntervalMs?: number;
  /** The newest threads followed (one connection may follow 50, MAX_SUBSCRIPTIONS_PER_CONNECTION). @default 40 */
  readonly maxThreads?: number;
  /** Model name in the reply's usage. @default "demo-1" */
  readonly model?: string;
  readonly log?: (line: string) => void;
}

/** How a reply ended, as the agent saw it. */
export type ReplyOutcome =
  | "complete"
  /** The user pressed stop: a delta (or the completion) was answered 409 message_not_streaming. */
  | "stopped"
  /** The reply was there already (a repeat, or a restarted agent): left as it is. */
  | "exists"
  /** The agent was stopped mid-reply: ended as an error with what it had said. */
  | "interrupted"
  | "failed";

export interface ReplyRecord {
  readonly threadId: string;
  readonly questionId: string;
  messageId?: string;
  /** Deltas accepted. */
  deltas: number;
  outcome?: ReplyOutcome;
}

/** A message as the API sends it (the fields the agent reads). */
interface WireMessage {
  readonly id: string;
  readonly thread_id: string;
  readonly role: string;
  readonly content?: string;
  readonly created_at_ms: number;
  readonly state?: string;
  readonly metadata?: Record<string, unknown>;
  readonly replayed?: boolean;
}

type Frame = Record<string, unknown> & { type?: string };

interface ApiAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** One followed thread: where its stream stands (README, "Resuming without missing anything"). */
interface Followed {
  readonly threadId: string;
  epoch: string | null;
  pos: number;
  settled: number;
  /** The newest history page was read (the starting position is known). */
  loaded: boolean;
  subscribing: boolean;
  /** Subscribe again once the subscription in flight is answered. */
  again: boolean;
  /** Positions of live events that came early, held until the ones before them arrive. */
  readonly early: Set<number>;
  gapTimer: NodeJS.Timeout | undefined;
  /** Replies in this thread, one after the other. */
  queue: Promise<void>;
}

const CLIENT_ID_PREFIX = "demo-reply:";
const GAP_WAIT_MS = 300;
const PING_EVERY_MS = 60_000;
const HTTP_TIMEOUT_MS = 10_000;
/** Answered messages remembered (repeats beyond it are caught by the reply's client_message_id). */
const SEEN_LIMIT = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const between = ([min, max]: readonly [number, number]): number => min + Math.random() * (max - min);
const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const codeOf = (answer: ApiAnswer): unknown => (answer.body.error as { code?: unknown } | undefined)?.code;

export class DemoAgent {
  /** Every reply this agent started, by the id of the message it answers. */
  readonly replies = new Map<string, ReplyRecord>();
  private readonly followed = new Map<string, Followed>();
  private readonly seen = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly name: string;
  /** This run of the agent: in its replies' metadata (`agent_run`). */
  private readonly runId = randomUUID();
  private readonly log: (line: string) => void;
  private startedAt = Number.POSITIVE_INFINITY;
  private socket: WebSocket | undefined;
  private connected = false;
  private stopping = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = 250;
  private requests = 0;
  private token: { value: string; at: number } | undefined;
  private polled = false;
  private pollFailing = false;
  private socketFailing = false;
  private readyWaiters: (() => void)[] = [];

  constructor(private readonly options: DemoAgentOptions) {
    this.name = options.name ?? "demo";
    this.log = options.log ?? (() => undefined);
  }

  /** Threads followed now. */
  get threads(): string[] {
    return [...this.followed.keys()];
  }

  /**
   * Starts answering messages created from now on; resolves once the threads were listed and the
   * WebSocket connection is open (retrying both until they are).
   */
  async start(): Promise<void> {
    this.startedAt = Date.now();
    const ready = new Promise<void>((resolve) => this.readyWaiters.push(resolve));
    void this.connect();
    void this.poll();
    await ready;
  }

  /** Stops: replies in progress end (as errors with what they said), then the connection closes. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    for (const f of this.followed.values()) clearTimeout(f.gapTimer);
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    const socket = this.socket;
    this.connected = false;
    if (socket !== undefined && socket.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          socket.terminate();
          resolve();
        }, 1000);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.close();
      });
    }
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  /** Drops the WebSocket connection as a network would: the agent reconnects and resumes by itself. */
  drop(): void {
    this.socket?.terminate();
  }

  // ---- discovery ---------------------------------------------------------------------------

  private async poll(): Promise<void> {
    if (this.stopping) return;
    try {
      const limit = this.options.maxThreads ?? 40;
      const res = await this.call("GET", `/threads?agent=${encodeURIComponent(this.name)}&limit=${limit}`);
      if (res.status !== 200) throw new Error(`GET /threads?agent: ${res.status} ${String(codeOf(res))}`);
      if (this.pollFailing) this.log("listing threads works again");
      this.pollFailing = false;
      const found = (res.body.threads as { id: string }[]).map((t) => t.id);
      for (const id of found) if (!this.followed.has(id)) this.follow(id);
      for (const id of [...this.followed.keys()]) if (!found.includes(id)) this.unfollow(id);
      // A thread whose first page could not be read is tried again.
      for (const f of this.followed.values()) if (!f.loaded) void this.load(f);
      this.polled = true;
      this.checkReady();
    } catch (error) {
      if (!this.pollFailing) this.log(`cannot list threads (${errorText(error)}); retrying`);
      this.pollFailing = true;
    } finally {
      if (!this.stopping) {
        this.pollTimer = setTimeout(() => void this.poll(), this.options.pollIntervalMs ?? 1000);
      }
    }
  }

  private follow(threadId: string): void {
    const f: Followed = {
      threadId,
      epoch: null,
      pos: 0,
      settled: 0,
      loaded: false,
      subscribing: false,
      again: false,
      early: new Set(),
      gapTimer: undefined,
      queue: Promise.resolve(),
    };
    this.followed.set(threadId, f);
    this.log(`following thread ${threadId}`);
    void this.load(f);
  }

  private unfollow(threadId: string): void {
    const f = this.followed.get(threadId);
    if (f === undefined) return;
    clearTimeout(f.gapTimer);
    this.followed.delete(threadId);
    this.send({ action: "unsubscribe", threadId });
  }

  /** README step 1: the newest page, its messages and its position; then subscribe from there. */
  private async load(f: Followed): Promise<void> {
    if (f.loaded) return;
    const res = await this.call("GET", `/threads/${f.threadId}/messages?limit=20`).catch(() => null);
    if (res === null || res.status !== 200 || this.followed.get(f.threadId) !== f || f.loaded) return;
    for (const m of res.body.messages as WireMessage[]) this.consider(m);
    if (typeof res.body.epoch === "string" && typeof res.body.pos === "number") {
      f.epoch = res.body.epoch;
      f.pos = res.body.pos;
    }
    if (typeof res.body.settled === "number") f.settled = res.body.settled;
    f.loaded = true;
    this.subscribe(f);
  }

  // ---- the WebSocket connection ------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.stopping) return;
    let token: string;
    try {
      token = await this.currentToken();
    } catch (error) {
      this.log(`cannot get a token (${errorText(error)})`);
      this.reconnectLater();
      return;
    }
    if (this.stopping) return;
    const socket = new WebSocket(`${this.options.wsUrl}?token=${encodeURIComponent(token)}`);
    this.socket = socket;
    socket.on("open", () => {
      if (socket !== this.socket) return;
      this.connected = true;
      this.reconnectDelayMs = 250;
      if (this.socketFailing) this.log("WebSocket connected again");
      this.socketFailing = false;
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ action: "ping" }), PING_EVERY_MS);
      // Answers to subscriptions sent on an earlier connection will never come.
      for (const f of this.followed.values()) {
        f.subscribing = false;
        f.again = false;
        f.early.clear();
        this.subscribe(f);
      }
      this.checkReady();
    });
    socket.on("message", (data) => {
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString()) as Frame;
      } catch {
        return;
      }
      this.onFrame(frame);
    });
    socket.on("error", (error) => {
      if (!this.socketFailing) this.log(`WebSocket: ${errorText(error)}; reconnecting`);
      this.socketFailing = true;
    });
    socket.on("close", () => {
      if (socket !== this.socket) return;
      this.connected = false;
      clearInterval(this.pingTimer);
      this.reconnectLater();
    });
  }

  private reconnectLater(): void {
    if (this.stopping) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectDelayMs);
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
  }

  private send(frame: Record<string, unknown>): void {
    if (this.connected && this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  /** README step 2: subscribe with the position (and the settled seq to fall back on). */
  private subscribe(f: Followed): void {
    if (!this.connected || !f.loaded || this.stopping) return;
    if (f.subscribing) {
      f.again = true;
      return;
    }
    f.subscribing = true;
    clearTimeout(f.gapTimer);
    this.send({
      action: "subscribe",
      threadId: f.threadId,
      ...(f.epoch !== null ? { epoch: f.epoch, pos: f.pos } : {}),
      sinceSeq: f.settled,
      request_id: `sub:${f.threadId}:${++this.requests}`,
    });
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case "message.created":
        this.onCreated(frame);
        return;
      case "subscribed":
        void this.onSubscribed(frame);
        return;
      case "error":
        this.onError(frame);
        return;
      default:
        // pong, deltas, completions, snapshots: nothing to do.
        return;
    }
  }

  private onError(frame: Frame): void {
    if (frame.code === "connection_unknown" || frame.code === "token_expired") {
      this.token = undefined;
      this.socket?.terminate();
      return;
    }
    const requestId = typeof frame.request_id === "string" ? frame.request_id : "";
    if (!requestId.startsWith("sub:")) return;
    const f = this.followed.get(requestId.split(":")[1] ?? "");
    if (f === undefined) return;
    f.subscribing = false;
    if (frame.code === "thread_not_found") {
      this.unfollow(f.threadId);
      return;
    }
    this.log(`subscribe to ${f.threadId}: ${String(frame.code)}; trying again`);
    clearTimeout(f.gapTimer);
    f.gapTimer = setTimeout(() => this.subscribe(f), 1000);
  }

  private async onSubscribed(frame: Frame): Promise<void> {
    const f = this.followed.get(String(frame.threadId));
    if (f === undefined || !f.subscribing) return;
    // Caught up by seq (another epoch): what the replay left out is paged over HTTP.
    let cursor = frame.has_more === true ? frame.next_cursor : undefined;
    while (typeof cursor === "number" && !this.stopping) {
      const res = await this.call("GET", `/threads/${f.threadId}/messages?after=${cursor}&limit=100`).catch(
        () => null,
      );
      if (res === null || res.status !== 200) {
        await sleep(500);
        continue;
      }
      for (const m of res.body.messages as WireMessage[]) this.consider(m);
      cursor = res.body.next_cursor;
    }
    if (this.followed.get(f.threadId) !== f) return;
    f.epoch = frame.epoch as string;
    f.pos = frame.pos as number;
    if (typeof frame.settled === "number") f.settled = Math.max(f.settled, frame.settled);
    f.subscribing = false;
    if (f.again) {
      f.again = false;
      this.subscribe(f);
      return;
    }
    this.applyInOrder(f);
  }

  private onCreated(frame: Frame): void {
    const message = frame.message as WireMessage | undefined;
    if (message === undefined) return;
    const f = this.followed.get(message.thread_id);
    if (f === undefined) return;
    this.consider(message);
    if (frame.replay === true || typeof frame.pos !== "number" || typeof frame.epoch !== "string") return;
    // README step 3: live events in pos order; an early one waits briefly for those before it.
    if (f.subscribing) {
      f.early.add(frame.pos);
      return;
    }
    if (frame.epoch !== f.epoch) {
      this.subscribe(f);
      return;
    }
    if (typeof frame.settled === "number") f.settled = Math.max(f.settled, frame.settled);
    f.early.add(frame.pos);
    this.applyInOrder(f);
  }

  private applyInOrder(f: Followed): void {
    while (f.early.delete(f.pos + 1)) f.pos += 1;
    for (const p of f.early) if (p <= f.pos) f.early.delete(p);
    clearTimeout(f.gapTimer);
    if (f.early.size > 0) f.gapTimer = setTimeout(() => this.subscribe(f), GAP_WAIT_MS);
  }

  private checkReady(): void {
    if (this.polled && this.connected) for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  // ---- replies -----------------------------------------------------------------------------

  /** A user message created since the agent started, not seen before: answered, once. */
  private consider(message: WireMessage): void {
    if (this.stopping || message.role !== "user" || !(message.created_at_ms > this.startedAt)) return;
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value as string);
    const f = this.followed.get(message.thread_id);
    if (f === undefined) return;
    const record: ReplyRecord = { threadId: message.thread_id, questionId: message.id, deltas: 0 };
    this.replies.set(message.id, record);
    const done = f.queue.then(() =>
      this.answer(message, record).catch((error: unknown) => {
        record.outcome = "failed";
        this.log(`reply to ${message.id} failed: ${errorText(error)}`);
      }),
    );
    f.queue = done;
    this.inflight.add(done);
    void done.finally(() => this.inflight.delete(done));
  }

  private async answer(question: WireMessage, record: ReplyRecord): Promise<void> {
    if (this.stopping) return;
    const content =
      question.content ?? // a frame too large to carry it: read it
      ((await this.call("GET", `/messages/${question.id}`)).body.content as string);
    const reply = composeReply(content, question.id);
    const pieces = reply.match(/\S+\s*/g) ?? [];

    // The key is the question's: one reply per question, whichever agent (or run) gets there
    // first. Every try of the key answers the reply that was opened first, with its metadata: the
    // run id in it tells a retry of this run's own open from another run's reply.
    const opened = await this.retrying("open", () =>
      this.call("POST", `/threads/${question.thread_id}/messages`, {
        role: "assistant",
        message: "",
        state: "streaming",
        client_message_id: `${CLIENT_ID_PREFIX}${question.id}`,
        metadata: { agent: this.name, in_reply_to: question.id, agent_run: this.runId },
      }),
    );
    if (opened.status === 409 && codeOf(opened) === "idempotency_key_reused") {
      // The key holds something else than a streamed reply: not this agent's to touch.
      record.outcome = "exists";
      this.log(`message ${question.id} has another message under its reply's key`);
      return;
    }
    if (opened.status !== 201) throw new Error(`open: ${opened.status} ${String(codeOf(opened))}`);
    const message = opened.body as unknown as WireMessage;
    record.messageId = message.id;
    if (
      message.state !== "streaming" ||
      (message.replayed === true && message.metadata?.agent_run !== this.runId)
    ) {
      record.outcome = "exists";
      this.log(`message ${question.id} has its reply already (${message.id})`);
      return;
    }
    this.log(`replying to ${question.id} in thread ${question.thread_id} (${pieces.length} words)`);
    try {
      await this.stream(message.id, content, pieces, record);
    } catch (error) {
      // Ended as an error rather than left to the idle timeout (best effort: it may be what failed).
      await this.end(message.id, {
        finish_reason: "error",
        error: { code: "agent_error", message: errorText(error).slice(0, 200) },
      }).catch(() => undefined);
      throw error;
    }
  }

  private async stream(
    messageId: string,
    question: string,
    pieces: readonly string[],
    record: ReplyRecord,
  ): Promise<void> {
    await sleep(between(this.options.firstWordDelayMs ?? [300, 800]));
    let said = "";
    for (const [index, text] of pieces.entries()) {
      if (this.stopping) {
        await this.end(messageId, {
          finish_reason: "error",
          content: said,
          error: { code: "agent_stopped", message: "The demo agent was stopped" },
        });
        record.outcome = "interrupted";
        return;
      }
      if (index > 0) await sleep(1000 / between(this.options.wordsPerSecond ?? [20, 40]));
      const res = await this.retrying("delta", () =>
        this.call("POST", `/messages/${messageId}/deltas`, { index, text }),
      );
      if (res.status === 409 && codeOf(res) === "message_not_streaming") {
        record.outcome = "stopped";
        this.log(`reply ${messageId} was stopped after ${index} words`);
        return;
      }
      if (res.status !== 202) throw new Error(`delta ${index}: ${res.status} ${String(codeOf(res))}`);
      record.deltas = index + 1;
      said += text;
    }
    const inputTokens = question.split(/\s+/).filter((w) => w !== "").length;
    const done = await this.end(messageId, {
      finish_reason: "stop",
      content: said,
      usage: {
        model: this.options.model ?? "demo-1",
        input_tokens: inputTokens,
        output_tokens: pieces.length,
      },
    });
    if (done.status === 409 && codeOf(done) === "message_not_streaming") {
      record.outcome = "stopped";
      return;
    }
    if (done.status !== 200) throw new Error(`complete: ${done.status} ${String(codeOf(done))}`);
    record.outcome = "complete";
    this.log(`reply ${messageId} complete`);
  }

  private end(messageId: string, body: Record<string, unknown>): Promise<ApiAnswer> {
    return this.retrying("complete", () => this.call("POST", `/messages/${messageId}/complete`, body));
  }

  /**
   * Retries a call that failed in transit, or was answered 5xx, 429 or 409 request_in_progress
   * (every call here may be repeated: the reply's key, a delta's index, an ending's first winner);
   * not once the agent is stopping.
   */
  private async retrying(what: string, work: () => Promise<ApiAnswer>): Promise<ApiAnswer> {
    for (let attempt = 0; ; attempt++) {
      let failure: string;
      try {
        const answer = await work();
        const again =
          answer.status >= 500 || answer.status === 429 || codeOf(answer) === "request_in_progress";
        if (!again || attempt >= 5 || this.stopping) return answer;
        failure = `HTTP ${answer.status} ${String(codeOf(answer))}`;
      } catch (error) {
        if (attempt >= 5 || this.stopping) throw error;
        failure = errorText(error);
      }
      this.log(`${what}: ${failure}; retrying`);
      await sleep(Math.min(200 * 2 ** attempt, 2000));
    }
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private async currentToken(): Promise<string> {
    const { token } = this.options;
    if (typeof token === "string") return token;
    // Minted tokens are renewed hourly (they last longer; a reconnect also asks for a new one).
    if (this.token === undefined || Date.now() - this.token.at > 3_600_000) {
      this.token = { value: await token(), at: Date.now() };
    }
    return this.token.value;
  }

  private async call(method: string, path: string, body?: unknown): Promise<ApiAnswer> {
    const res = await fetch(`${this.options.apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await this.currentToken()}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      parsed = { error: { code: "not_json" } };
    }
    return { status: res.status, body: parsed };
  }
}

// ---- the reply -------------------------------------------------------------------------------

/** A small deterministic generator (mulberry32) seeded from a string: the same question id, the same reply. */
const seeded = (seed: string): (() => number) => {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  return mulberry32(h);
};

const OPENERS_QUESTION = [
  "Good question.",
  "Let me think about that for a moment.",
  "Happy to help with that.",
  "That's an interesting one.",
];
const OPENERS_STATEMENT = [
  "Thanks for sharing that.",
  "Got it.",
  "Noted, thank you.",
  "I see what you mean.",
];
const ECHOES_QUESTION = [
  (topic: string) => `You asked: "${topic}"`,
  (topic: string) => `So the question is "${topic}"`,
  (topic: string) => `If I understand you right, it's about "${topic}"`,
];
const ECHOES_STATEMENT = [
  (topic: string) => `You said: "${topic}"`,
  (topic: string) => `So, in your words: "${topic}"`,
];
const BODY = [
  "I'm the demo agent of the local stack, so I don't call a language model: this reply is put together on the spot.",
  "Each word you see arrives as its own message.delta frame over the WebSocket, at about the pace a model would write.",
  "When I'm done, the full reply is stored once, with its usage, in PostgreSQL and then in ClickHouse.",
  "If you press stop, my next delta is refused with a 409 and I end right there; what I said so far is kept.",
  "A real agent does exactly what I do: it finds its threads, opens a streaming reply, appends deltas and completes it, all through the public API.",
  "Reload the page halfway through and you pick up the reply where it stands, then follow the rest live.",
];
const CLOSERS_QUESTION = [
  "I hope that helps!",
  "Ask me anything else, and I'll stream another answer.",
  "That's all I have for now.",
];
const CLOSERS_STATEMENT = ["Tell me more whenever you like.", "Send another message to see me stream again."];

/** The first words of the question, at most 12 words and 120 characters. */
const topicOf = (question: string): string => {
  const words = question.split(/\s+/).filter((w) => w !== "");
  const chars = [...words.slice(0, 12).join(" ")];
  const cut = words.length > 12 || chars.length > 120;
  const topic = chars
    .slice(0, 120)
    .join("")
    .replace(/"/g, "'")
    .replace(cut ? /[\s.?!,;:']+$/u : /[\s.,;:]+$/u, "");
  return cut ? `${topic}…` : topic;
};

/** A canned but friendly reply that echoes the question (deterministic for a given seed). */
export const composeReply = (question: string, seed: string): string => {
  const random = seeded(seed);
  const pick = <T>(choices: readonly T[]): T => choices[Math.floor(random() * choices.length)] as T;
  const topic = topicOf(question);
  if (topic === "") return `You sent an empty message, so here is a short demo instead. ${pick(BODY)}`;
  const asking = /\?\s*$/.test(question);
  const body = [...BODY].sort(() => random() - 0.5).slice(0, 2 + Math.floor(random() * 2));
  return [
    pick(asking ? OPENERS_QUESTION : OPENERS_STATEMENT),
    // A period after the quote, unless the quote ends its own sentence.
    pick(asking ? ECHOES_QUESTION : ECHOES_STATEMENT)(topic) + (/[?!…]$/u.test(topic) ? "" : "."),
    ...body,
    pick(asking ? CLOSERS_QUESTION : CLOSERS_STATEMENT),
  ].join(" ");
};

// ---- npm run demo-agent ----------------------------------------------------------------------

/** A service token signed with the local secret, as `npm run token -- --roles service` makes one. */
export const demoAgentToken = (secret: string, sub = "demo-agent"): Promise<string> =>
  signDevToken({
    secret,
    sub,
    roles: ["service"],
    ...(process.env.JWT_ISSUER !== undefined ? { issuer: process.env.JWT_ISSUER } : {}),
    ...(process.env.JWT_AUDIENCE !== undefined ? { audience: process.env.JWT_AUDIENCE } : {}),
    ...(process.env.JWT_ROLES_CLAIM !== undefined ? { rolesClaim: process.env.JWT_ROLES_CLAIM } : {}),
  });

const runFromCommandLine = async (): Promise<void> => {
  const { values } = parseArgs({
    options: {
      api: { type: "string", default: `http://127.0.0.1:${process.env.HTTP_PORT ?? 3000}/api` },
      ws: { type: "string", default: `ws://127.0.0.1:${process.env.WS_PORT ?? 3001}/local` },
      name: { type: "string", default: "demo" },
      sub: { type: "string", default: "demo-agent" },
    },
  });
  const secret = process.env.JWT_SECRET ?? (LOCAL_DEFAULTS.JWT_SECRET as string);
  const agent = new DemoAgent({
    apiUrl: values.api.replace(/\/+$/, ""),
    wsUrl: values.ws,
    name: values.name,
    token: () => demoAgentToken(secret, values.sub),
    log: (line) => console.log(`[demo-agent] ${line}`),
  });
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await agent.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown());
  process.on("SIGTERM", () => void shutdown());
  console.log(`[demo-agent] connecting to ${values.api} and ${values.ws}`);
  await agent.start();
  console.log(
    `[demo-agent] answering threads with metadata.agent = "${values.name}" as service principal "${values.sub}"; Ctrl-C stops`,
  );
};

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  await runFromCommandLine();
}
