/**
 * The web client, served by the local stack: the built files (scripts/web/build.ts), a
 * `config.json` that tells the page where the API and the WebSocket API are, and `local/token`,
 * which signs a development token for a user name (sign-in on the local stack only; it is not part
 * of the deployed API). Served beside the API on its port (`/`), or on a port of its own (a page
 * on another origin than the API, as when it is deployed to a CDN).
 */
import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { ClientConfig } from "../../web/src/config.ts";
import { buildWebClient } from "../web/build.ts";
import { readBody } from "./request-body.ts";
import { signDevToken } from "./tokens.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

const FILES = new Set(["index.html", "app.js", "app.js.map", "app.css"]);

/** A user name the local sign-in accepts. */
const USER = /^[A-Za-z0-9._@-]{1,64}$/;

export interface WebSiteOptions {
  /** Where the page finds the API (…/api) and the WebSocket API. */
  readonly apiUrl: string;
  readonly wsUrl: string;
  /** The HS256 secret development tokens are signed with. */
  readonly jwtSecret: string;
  /** Where the built files go. @default .local/web */
  readonly outdir?: string;
}

export class WebSite {
  private dir: string | undefined;
  private server: http.Server | undefined;

  constructor(private readonly options: WebSiteOptions) {}

  async build(): Promise<void> {
    this.dir = await buildWebClient(this.options.outdir);
  }

  /** Answers a request for the site; false when the path is not the site's. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = (req.method ?? "GET").toUpperCase();
    const name = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
    if (name === "local/token" && method === "POST") {
      await this.token(req, res);
      return true;
    }
    if (method !== "GET" && method !== "HEAD") return false;
    if (name === "config.json") {
      const config: ClientConfig = {
        apiUrl: this.options.apiUrl,
        wsUrl: this.options.wsUrl,
        auth: { mode: "local", tokenUrl: "local/token" },
      };
      this.write(res, 200, TYPES[".map"] as string, JSON.stringify(config), "no-store");
      return true;
    }
    if (!FILES.has(name) || this.dir === undefined) return false;
    const body = await readFile(path.join(this.dir, name));
    this.write(res, 200, TYPES[path.extname(name)] ?? "application/octet-stream", body, "no-cache");
    return true;
  }

  /** Serves the site alone on a port of its own. */
  async listen(port: number): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res)
        .then((handled) => {
          if (!handled) this.write(res, 404, "text/plain; charset=utf-8", "Not Found", "no-store");
        })
        .catch(() => this.write(res, 500, "text/plain; charset=utf-8", "Internal Server Error", "no-store"));
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once("error", reject);
      this.server?.listen(port, "127.0.0.1", () => resolve());
    });
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBody(req, 4096);
    let sub: unknown;
    try {
      sub = (JSON.parse(raw?.toString("utf8") ?? "{}") as { sub?: unknown }).sub;
    } catch {
      sub = undefined;
    }
    if (typeof sub !== "string" || !USER.test(sub)) {
      const error = {
        error: { code: "invalid_user", message: "sub must be 1-64 characters: letters, digits, . _ @ -" },
      };
      this.write(res, 400, TYPES[".map"] as string, JSON.stringify(error), "no-store");
      return;
    }
    const token = await signDevToken({ secret: this.options.jwtSecret, sub });
    this.write(res, 200, TYPES[".map"] as string, JSON.stringify({ token }), "no-store");
  }

  private write(
    res: http.ServerResponse,
    status: number,
    type: string,
    body: string | Buffer,
    cache: string,
  ): void {
    res.writeHead(status, {
      "content-type": type,
      "cache-control": cache,
      "x-content-type-options": "nosniff",
    });
    res.end(body);
  }
}
