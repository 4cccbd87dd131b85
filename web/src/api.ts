/**
 * The API's contract as a browser uses it (README, "Using the API"): one typed function per route,
 * bearer tokens, JSON errors with a stable `code`, idempotent sends with `client_message_id`, and
 * each answer's Server-Timing.
 */

export type Role = "user" | "assistant" | "system";
export type MessageState = "streaming" | "complete" | "cancelled" | "error";

export interface Message {
  readonly id: string;
  readonly thread_id: string;
  readonly seq: number;
  readonly role: Role;
  readonly user_id: string;
  readonly content: string;
  readonly metadata: Record<string, unknown>;
  readonly client_message_id: string | null;
  readonly created_at: number;
  readonly created_at_ms: number;
  readonly state?: MessageState;
  /** A reply still streaming: the last delta index its content includes (-1: none yet). */
  readonly delta_index?: number | null;
  readonly finish_reason?: string | null;
  readonly usage?: { model?: string; input_tokens?: number; output_tokens?: number } | null;
}

export interface Thread {
  readonly id: string;
  readonly owner_id: string;
  readonly title: string | null;
  readonly metadata: Record<string, unknown>;
  readonly created_at: number;
  readonly created_at_ms: number;
  readonly archived: boolean;
  readonly message_count?: number;
}

/** A history page with the stream position it was read at (the resume cursor). */
export interface HistoryPage {
  readonly messages: Message[];
  readonly next_cursor: number | null;
  readonly epoch?: string;
  readonly pos?: number;
  readonly settled: number;
}

export interface Health {
  readonly status: "ok" | "degraded" | "down";
  readonly tiers?: Record<string, { status: string; latency_ms?: number }>;
}

/** Server-Timing of one answer, by metric name (ms). */
export type Timing = Record<string, number>;

export const parseServerTiming = (header: string | null): Timing => {
  const timing: Timing = {};
  for (const part of (header ?? "").split(",")) {
    const [name, ...params] = part.trim().split(";");
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    if (name && dur !== undefined) timing[name] = Number(dur.slice(4));
  }
  return timing;
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
  }

  /** Worth trying again with the same request (and the same client_message_id). */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export interface Answer<T> {
  readonly body: T;
  readonly status: number;
  readonly timing: Timing;
}

export interface PostedMessage extends Message {
  readonly status: string;
  readonly durability: "queued" | "committed";
  readonly replayed: boolean;
}

export class Api {
  constructor(
    /** The API's base URL, ending in /api. */
    private readonly baseUrl: string,
    private readonly token: () => string | null,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
    const headers: Record<string, string> = {};
    const token = this.token();
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new ApiError(0, "network_error", error instanceof Error ? error.message : "network error");
    }
    const text = await res.text();
    const parsed = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    if (!res.ok) {
      const error = (parsed.error ?? {}) as { code?: string; message?: string };
      const retryAfter = res.headers.get("retry-after");
      throw new ApiError(
        res.status,
        error.code ?? "http_error",
        error.message ?? `HTTP ${res.status}`,
        retryAfter === null ? null : Number(retryAfter),
      );
    }
    return {
      body: parsed as T,
      status: res.status,
      timing: parseServerTiming(res.headers.get("server-timing")),
    };
  }

  listThreads(options: { cursor?: string | null; archived?: "false" | "true" | "any" } = {}) {
    const q = new URLSearchParams({ limit: "20" });
    if (options.cursor) q.set("cursor", options.cursor);
    if (options.archived && options.archived !== "false") q.set("archived", options.archived);
    return this.request<{ threads: Thread[]; next_cursor: string | null }>("GET", `/threads?${q}`);
  }

  thread(id: string) {
    return this.request<Thread>("GET", `/threads/${id}`);
  }

  createThread(title: string | null, metadata: Record<string, unknown> = {}) {
    return this.request<Thread>("POST", "/threads", { ...(title ? { title } : {}), metadata });
  }

  updateThread(id: string, change: { title?: string | null; archived?: boolean }) {
    return this.request<Thread>("PATCH", `/threads/${id}`, change);
  }

  deleteThread(id: string) {
    return this.request<{ erasure_id: string; status_url: string }>("DELETE", `/threads/${id}`);
  }

  /** Newest first when `before` is absent; older pages with `before` (a page's next_cursor). */
  history(threadId: string, options: { before?: number; after?: number; limit?: number } = {}) {
    const q = new URLSearchParams({ limit: String(options.limit ?? 30) });
    if (options.before !== undefined) q.set("before", String(options.before));
    if (options.after !== undefined) q.set("after", String(options.after));
    return this.request<HistoryPage>("GET", `/threads/${threadId}/messages?${q}`);
  }

  message(id: string) {
    return this.request<Message>("GET", `/messages/${id}`);
  }

  /**
   * Sends a message with the client's id: a retry after a network error or a 5xx sends the same
   * id, so the message is stored once whatever happened to the first try.
   */
  async postMessage(
    threadId: string,
    text: string,
    clientMessageId: string,
    tries = 4,
  ): Promise<Answer<PostedMessage>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.request<PostedMessage>("POST", `/threads/${threadId}/messages`, {
          message: text,
          client_message_id: clientMessageId,
        });
      } catch (error) {
        if (!(error instanceof ApiError) || !error.retryable || attempt >= tries) throw error;
        const wait = (error.retryAfterSeconds ?? 0) * 1000 || 250 * 2 ** attempt;
        await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 4000)));
      }
    }
  }

  cancel(messageId: string) {
    return this.request<Message>("POST", `/messages/${messageId}/cancel`, {});
  }

  putFeedback(messageId: string, rating: "up" | "down") {
    return this.request<{ rating: string }>("PUT", `/messages/${messageId}/feedback`, { rating });
  }

  deleteFeedback(messageId: string) {
    return this.request<unknown>("DELETE", `/messages/${messageId}/feedback`);
  }

  health() {
    return this.request<Health>("GET", "/health");
  }
}
