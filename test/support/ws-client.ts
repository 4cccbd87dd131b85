/** A WebSocket test client: records every frame and waits for the ones a test expects. */
import WebSocket from "ws";

export type Frame = Record<string, unknown> & { type: string };

export class WsClient {
  readonly frames: Frame[] = [];
  private readonly waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private counter = 0;

  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.frames.push(frame);
      for (const w of [...this.waiters]) {
        if (w.match(frame)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    });
  }

  /** Opens a connection; rejects with the HTTP status when the server refuses the upgrade. */
  static connect(url: string, token: string | undefined): Promise<WsClient> {
    const target = token === undefined ? url : `${url}?token=${encodeURIComponent(token)}`;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(target);
      socket.once("open", () => resolve(new WsClient(socket)));
      socket.once("unexpected-response", (_req, res) => reject(new RefusedError(res.statusCode ?? 0)));
      socket.once("error", reject);
    });
  }

  send(frame: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame));
  }

  sendRaw(data: string): void {
    this.socket.send(data);
  }

  /** The first frame (already received or still to come) that matches. */
  next(match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const seen = this.frames.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching frame within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  /** Sends `action` with a fresh request_id and waits for the frame answering it. */
  async request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Frame> {
    const requestId = `r${++this.counter}`;
    const answer = this.next((f) => f.request_id === requestId, timeoutMs);
    this.send({ ...frame, request_id: requestId });
    return answer;
  }

  /**
   * Every frame the server sent before this call has arrived once the pong is here: frames on one
   * connection arrive in order.
   */
  async barrier(): Promise<void> {
    await this.request({ action: "ping" });
  }

  messagesCreated(): Frame[] {
    return this.frames.filter((f) => f.type === "message.created");
  }

  /** Resolves when the connection is closed (by either side). */
  closed(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.socket.once("close", () => resolve()));
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.close();
    });
  }
}

export class RefusedError extends Error {
  constructor(readonly status: number) {
    super(`WebSocket connection refused with HTTP ${status}`);
  }
}
