/**
 * A TCP proxy a fault test can cut: the handlers reach a dependency through it, and `cut()` makes
 * that dependency unreachable (new connections refused, open ones dropped) without stopping it —
 * for dependencies that must keep their state, like the SQS endpoint holding queued messages.
 */
import net from "node:net";

/** A port that accepts connections and never answers: calls to it hang until their own timeout. */
export const blackhole = async (port: number): Promise<{ close(): Promise<void> }> => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
};

/**
 * Forwards chunks from `from` to `to`, each `delay(chunk)` ms after it arrived (timers fire with
 * about 1 ms granularity, so a draw below it is held about 1 ms) but never before the one
 * that arrived earlier: one queue per direction, drained in order by one timer (timers of different
 * durations that come due together may fire in any order, which would reorder the byte stream).
 */
const forward = (
  from: net.Socket,
  to: net.Socket,
  delay: (chunk: Buffer) => number,
  onChunk?: () => boolean,
): void => {
  const queue: { at: number; work: () => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const pump = (): void => {
    timer = undefined;
    for (let next = queue[0]; next !== undefined && next.at <= performance.now(); next = queue[0]) {
      queue.shift();
      if (!to.destroyed) next.work();
    }
    const head = queue[0];
    if (head !== undefined) timer = setTimeout(pump, Math.max(0, head.at - performance.now()));
  };
  const later = (ms: number, work: () => void): void => {
    if (ms <= 0 && queue.length === 0) {
      work();
      return;
    }
    queue.push({ at: Math.max(performance.now() + ms, queue.at(-1)?.at ?? 0), work });
    if (timer === undefined) pump();
  };
  from.on("data", (chunk: Buffer) => {
    if (onChunk !== undefined && !onChunk()) return;
    later(delay(chunk), () => to.write(chunk));
  });
  from.on("end", () => later(0, () => to.end()));
};

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Requests reach the server, but its answers are thrown away and the client's connection dropped. */
  dropResponses = false;
  /** Milliseconds each chunk is held in each direction (0: none); a latency fault, not a cut. */
  delayMs = 0;
  /**
   * Per-chunk delays drawn from a distribution (the benchmark's latency profiles), in place of
   * `delayMs`: `request` for client → server chunks, `response` for server → client ones.
   */
  latency: { request(chunk: Buffer): number; response(chunk: Buffer): number } | undefined;

  private constructor(
    private listenPort: number,
    /** Where connections go (a later change applies to connections opened after it). */
    public targetPort: number,
  ) {}

  /** The port it listens on (chosen at the first start when it was asked for port 0). */
  get port(): number {
    return this.listenPort;
  }

  static async start(port: number, targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(port, targetPort);
    await proxy.restore();
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Forward connections again. */
  async restore(): Promise<void> {
    if (this.server !== undefined) return;
    const server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      forward(client, upstream, (chunk) => this.latency?.request(chunk) ?? this.delayMs);
      forward(
        upstream,
        client,
        (chunk) => this.latency?.response(chunk) ?? this.delayMs,
        () => {
          if (!this.dropResponses) return true;
          client.destroy();
          return false;
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.listenPort, "127.0.0.1", () => {
        this.listenPort = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
    this.server = server;
  }

  /** Refuse new connections and drop the open ones. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
