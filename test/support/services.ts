/**
 * Private data servers for fault tests, started and stopped with scripts/services.sh (the same
 * script that provides the shared ones), on ports and a state folder of their own.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./redis-server.ts";

const run = promisify(execFile);
const SCRIPT = path.resolve(import.meta.dirname, "../../scripts/services.sh");
/**
 * Under the temp folder, not the clone: the postgres user must reach a private server's data
 * folder, and a clone may sit in a home directory with mode 700. One folder per clone.
 */
const STATE_DIR = path.join(
  os.tmpdir(),
  `chat-pipeline-fault-tests-${createHash("sha256")
    .update(path.resolve(import.meta.dirname, "../.."))
    .digest("hex")
    .slice(0, 12)}`,
);

export class PrivateServer {
  private constructor(
    private readonly name: "postgres" | "clickhouse",
    private readonly env: Record<string, string>,
  ) {}

  static async postgres(): Promise<PrivateServer & { url: (database: string) => string }> {
    const port = await freePort();
    const server = new PrivateServer("postgres", { PG_PORT: String(port) });
    await server.start();
    return Object.assign(server, {
      url: (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    });
  }

  static async clickhouse(): Promise<PrivateServer & { url: string }> {
    const [http, tcp] = [await freePort(), await freePort()];
    const server = new PrivateServer("clickhouse", {
      CLICKHOUSE_HTTP_PORT: String(http),
      CLICKHOUSE_TCP_PORT: String(tcp),
    });
    await server.start();
    return Object.assign(server, { url: `http://127.0.0.1:${http}` });
  }

  private async services(command: "up" | "down"): Promise<void> {
    await run("bash", [SCRIPT, command, this.name], {
      env: { ...process.env, ...this.env, STATE_DIR },
      timeout: 90_000,
    });
  }

  start(): Promise<void> {
    return this.services("up");
  }

  stop(): Promise<void> {
    return this.services("down");
  }
}
