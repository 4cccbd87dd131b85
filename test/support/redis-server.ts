/**
 * A private redis-server for tests that must flush, stop or pause Redis without touching the
 * shared one. Uses the redis-server binary that scripts/services.sh installs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import { waitFor } from "./wait.ts";

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

const answers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.write("PING\r\n");
    });
    socket.once("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
  });

export class PrivateRedis {
  private process: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.resume();
    return redis;
  }

  /** Starts (or restarts) the server, empty: it keeps nothing on disk. */
  async resume(): Promise<void> {
    this.process = spawn(
      "redis-server",
      [
        "--bind",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
      ],
      { stdio: "ignore" },
    );
    await waitFor(() => answers(this.port), { what: `redis-server on ${this.port}`, timeoutMs: 10_000 });
  }

  /** FLUSHALL: the server loses every key, as after a restart or a failover without the data. */
  flushAll(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, "127.0.0.1");
      socket.once("connect", () => socket.write("FLUSHALL\r\n"));
      socket.once("data", (data) => {
        socket.destroy();
        if (data.toString().startsWith("+OK")) resolve();
        else reject(new Error(`FLUSHALL: ${data.toString()}`));
      });
      socket.once("error", reject);
    });
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void {
    this.process?.kill("SIGSTOP");
  }

  unpause(): void {
    this.process?.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
    this.process = undefined;
  }
}
