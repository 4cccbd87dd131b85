/**
 * The client's state and every action on it: threads, the open thread's messages (kept by id, in
 * seq order), sends with an optimistic bubble, the connection, and the diagnostics. Components
 * read it and call its methods; it tells them when it changed.
 */
import { Api, ApiError, type Health, type Message, type Thread, type Timing } from "./api.ts";
import type { ClientConfig } from "./config.ts";
import { type ConnectionState, Live } from "./live.ts";

export type ArchivedFilter = "false" | "true" | "any";

/** A message as the page shows it: a sent one may still be on its way, or have failed. */
export interface Shown extends Message {
  readonly sending?: "pending" | "failed";
  readonly error?: string;
}

export interface SendRecord {
  readonly at: number;
  readonly status: number | string;
  readonly timing: Timing;
  readonly durability?: string;
}

const byId = (list: readonly Thread[], thread: Thread): Thread[] =>
  list.some((t) => t.id === thread.id)
    ? list.map((t) => (t.id === thread.id ? thread : t))
    : [thread, ...list];

export class Store {
  readonly api: Api;
  private readonly live: Live;
  private readonly listeners = new Set<() => void>();

  threads: Thread[] = [];
  threadsCursor: string | null = null;
  archived: ArchivedFilter = "false";
  selected: string | null = null;
  /** The open thread (it may be filtered out of the list: archived, or an older page). */
  current: Thread | null = null;
  messages = new Map<string, Shown>();
  olderCursor: number | null = null;
  loadingOlder = false;
  connection: ConnectionState = "offline";
  browserOnline = typeof navigator === "undefined" ? true : navigator.onLine;
  sends: SendRecord[] = [];
  health: Health | null = null;
  healthError: string | null = null;
  notice: string | null = null;
  feedback = new Map<string, "up" | "down">();

  constructor(
    readonly config: ClientConfig,
    token: () => string | null,
  ) {
    this.api = new Api(config.apiUrl, token);
    this.live = new Live(config.wsUrl, token, this.api, {
      message: (m) => this.keep(m),
      threadUpdated: (t) => this.updated(t),
      threadDeleted: (id) => this.forgetThread(id, "This thread was deleted."),
      state: (state) => {
        this.connection = state;
        this.changed();
      },
    });
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  start(): void {
    this.live.connect();
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    void this.loadThreads();
    void this.refreshHealth();
    // The open thread is in the address (#/threads/<id>): a reload opens it again.
    const open = /^#\/threads\/([0-9a-f-]{36})$/.exec(location.hash)?.[1];
    if (open !== undefined) void this.open(open);
  }

  stop(): void {
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    this.live.close();
  }

  private readonly onOnline = (): void => {
    this.browserOnline = true;
    this.live.retryNow();
    this.changed();
  };

  private readonly onOffline = (): void => {
    this.browserOnline = false;
    this.changed();
  };

  /** Runs an action; an error becomes the page's notice instead of an exception. */
  private async attempt<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (error) {
      this.notice = `${what}: ${error instanceof ApiError ? `${error.message} (${error.code})` : String(error)}`;
      this.changed();
      return undefined;
    }
  }

  dismissNotice(): void {
    this.notice = null;
    this.changed();
  }

  // ---------------------------------------------------------------- threads

  async loadThreads(more = false): Promise<void> {
    const answer = await this.attempt("Loading threads", () =>
      this.api.listThreads({ cursor: more ? this.threadsCursor : null, archived: this.archived }),
    );
    if (answer === undefined) return;
    this.threads = more ? [...this.threads, ...answer.body.threads] : answer.body.threads;
    this.threadsCursor = answer.body.next_cursor;
    this.changed();
  }

  async setArchivedFilter(filter: ArchivedFilter): Promise<void> {
    this.archived = filter;
    await this.loadThreads();
  }

  /** `agent`: the agent asked to answer the thread (`metadata.agent`; the local demo agent is "demo"). */
  async createThread(title: string, agent = ""): Promise<void> {
    const metadata = agent.trim() === "" ? {} : { agent: agent.trim() };
    const answer = await this.attempt("Creating the thread", () =>
      this.api.createThread(title.trim() || null, metadata),
    );
    if (answer === undefined) return;
    this.threads = byId(this.threads, answer.body);
    this.changed();
    await this.open(answer.body.id);
  }

  async rename(id: string, title: string): Promise<void> {
    const answer = await this.attempt("Renaming", () =>
      this.api.updateThread(id, { title: title.trim() || null }),
    );
    if (answer !== undefined) this.updated(answer.body);
  }

  /** A thread changed (here, or in another tab: `thread.updated`). */
  private updated(thread: Thread): void {
    const shown = this.archived === "any" || (this.archived === "true") === thread.archived;
    this.threads = shown ? byId(this.threads, thread) : this.threads.filter((t) => t.id !== thread.id);
    if (this.current?.id === thread.id) this.current = thread;
    this.changed();
  }

  async setArchived(id: string, archived: boolean): Promise<void> {
    const answer = await this.attempt(archived ? "Archiving" : "Restoring", () =>
      this.api.updateThread(id, { archived }),
    );
    if (answer !== undefined) this.updated(answer.body);
  }

  async remove(id: string): Promise<void> {
    const answer = await this.attempt("Deleting", () => this.api.deleteThread(id));
    if (answer !== undefined) this.forgetThread(id, null);
  }

  private forgetThread(id: string, notice: string | null): void {
    this.threads = this.threads.filter((t) => t.id !== id);
    if (this.selected === id) {
      this.selected = null;
      this.current = null;
      history.replaceState(null, "", location.pathname);
      this.messages = new Map();
      this.live.unfollow();
      this.notice = notice;
    }
    this.changed();
  }

  // ---------------------------------------------------------------- one thread

  get thread(): Thread | undefined {
    return this.current ?? undefined;
  }

  /** The open thread's messages in seq order (messages still being sent at the end). */
  get ordered(): Shown[] {
    return [...this.messages.values()].sort((a, b) => {
      if ((a.sending !== undefined) !== (b.sending !== undefined)) return a.sending !== undefined ? 1 : -1;
      return a.seq - b.seq || a.created_at_ms - b.created_at_ms;
    });
  }

  async open(id: string): Promise<void> {
    this.selected = id;
    history.replaceState(null, "", `#/threads/${id}`);
    this.messages = new Map();
    this.olderCursor = null;
    this.current = this.threads.find((t) => t.id === id) ?? null;
    this.changed();
    if (this.current === null) {
      const thread = await this.attempt("Loading the thread", () => this.api.thread(id));
      if (thread === undefined || this.selected !== id) return;
      this.current = thread.body;
    }
    const answer = await this.attempt("Loading the thread", () => this.api.history(id));
    if (answer === undefined || this.selected !== id) return;
    for (const m of answer.body.messages) this.messages.set(m.id, m);
    this.olderCursor = answer.body.next_cursor;
    this.live.follow(
      id,
      { epoch: answer.body.epoch ?? null, pos: answer.body.pos ?? 0, settled: answer.body.settled },
      answer.body.messages,
    );
    this.changed();
  }

  async loadOlder(): Promise<void> {
    const id = this.selected;
    if (id === null || this.olderCursor === null || this.loadingOlder) return;
    this.loadingOlder = true;
    this.changed();
    const answer = await this.attempt("Loading older messages", () =>
      this.api.history(id, { before: this.olderCursor as number }),
    );
    this.loadingOlder = false;
    if (answer !== undefined && this.selected === id) {
      for (const m of answer.body.messages) if (!this.messages.has(m.id)) this.messages.set(m.id, m);
      this.olderCursor = answer.body.next_cursor;
    }
    this.changed();
  }

  private keep(message: Message): void {
    if (message.thread_id !== this.selected) return;
    // The server's copy replaces an optimistic bubble of the same client id.
    for (const [key, shown] of this.messages) {
      if (shown.sending !== undefined && shown.client_message_id === message.client_message_id) {
        this.messages.delete(key);
      }
    }
    this.messages.set(message.id, message);
    this.changed();
  }

  /**
   * Sends with a client id of its own: shown at once, confirmed by the answer or the live event,
   * retried with the same id after a network error or a 5xx (never stored twice).
   */
  async send(text: string, clientMessageId: string = crypto.randomUUID()): Promise<void> {
    const threadId = this.selected;
    if (threadId === null || text.trim() === "") return;
    const key = `local:${clientMessageId}`;
    const now = Date.now();
    this.messages.set(key, {
      id: key,
      thread_id: threadId,
      seq: Number.MAX_SAFE_INTEGER,
      role: "user",
      user_id: "",
      content: text,
      metadata: {},
      client_message_id: clientMessageId,
      created_at: Math.floor(now / 1000),
      created_at_ms: now,
      sending: "pending",
    });
    this.changed();
    try {
      const answer = await this.api.postMessage(threadId, text, clientMessageId);
      this.sends = [
        { at: Date.now(), status: answer.status, timing: answer.timing, durability: answer.body.durability },
        ...this.sends,
      ].slice(0, 10);
      this.keep(answer.body);
    } catch (error) {
      const status = error instanceof ApiError ? error.status || error.code : "error";
      this.sends = [{ at: Date.now(), status, timing: {} }, ...this.sends].slice(0, 10);
      const shown = this.messages.get(key);
      if (shown !== undefined) {
        this.messages.set(key, {
          ...shown,
          sending: "failed",
          error: error instanceof ApiError ? error.message : String(error),
        });
      }
      this.changed();
    }
  }

  /** Sends a failed message again, with its client id (stored once, whatever the first try did). */
  async retry(key: string): Promise<void> {
    const shown = this.messages.get(key);
    if (shown?.sending !== "failed" || shown.client_message_id === null) return;
    this.messages.delete(key);
    await this.send(shown.content, shown.client_message_id);
  }

  async stopReply(messageId: string): Promise<void> {
    const answer = await this.attempt("Stopping the reply", () => this.api.cancel(messageId));
    if (answer !== undefined) this.keep(answer.body);
  }

  async rate(messageId: string, rating: "up" | "down"): Promise<void> {
    const current = this.feedback.get(messageId);
    if (current === rating) {
      const removed = await this.attempt("Removing the rating", () => this.api.deleteFeedback(messageId));
      if (removed !== undefined) this.feedback.delete(messageId);
    } else {
      const put = await this.attempt("Rating", () => this.api.putFeedback(messageId, rating));
      if (put !== undefined) this.feedback.set(messageId, rating);
    }
    this.changed();
  }

  // ---------------------------------------------------------------- diagnostics

  async refreshHealth(): Promise<void> {
    try {
      this.health = (await this.api.health()).body;
      this.healthError = null;
    } catch (error) {
      this.health = null;
      this.healthError = error instanceof ApiError ? `${error.status} ${error.code}` : String(error);
    }
    this.changed();
  }
}
