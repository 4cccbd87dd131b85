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
 * Forwards chunks from `from` to `to`, each `delay()` ms after it arrived but never before the one
 * that arrived earlier: one queue per direction, drained in order by one timer (timers of different
 * durations that come due together may fire in any order, which would reorder the byte stream).
 */
const forward = (from: net.Socket, to: net.Socket, delay: () => number, onChunk?: () => boolean): void => {
  const queue: { at: number; work: () => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const pump = (): void => {
    timer = undefined;
    for (let next = queue[0]; next !== undefined && next.at <= Date.now(); next = queue[0]) {
      queue.shift();
      if (!to.destroyed) next.work();
    }
    const head = queue[0];
    if (head !== undefined) timer = setTimeout(pump, Math.max(0, head.at - Date.now()));
  };
  const later = (work: () => void): void => {
    queue.push({ at: Math.max(Date.now() + delay(), queue.at(-1)?.at ?? 0), work });
    if (timer === undefined) pump();
  };
  from.on("data", (chunk: Buffer) => {
    if (onChunk !== undefined && !onChunk()) return;
    later(() => to.write(chunk));
  });
  from.on("end", () => later(() => to.end()));
};

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Requests reach the server, but its answers are thrown away and the client's connection dropped. */
  dropResponses = false;
  /** Milliseconds each chunk is held in each direction (0: none); a latency fault, not a cut. */
  delayMs = 0;

  private constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

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
      const delay = () => this.delayMs;
      forward(client, upstream, delay);
      forward(upstream, client, delay, () => {
        if (!this.dropResponses) return true;
        client.destroy();
        return false;
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
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
