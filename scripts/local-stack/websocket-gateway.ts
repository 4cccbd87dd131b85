/**
 * A local API Gateway WebSocket API and its Management API, on one port:
 *  - upgrades run the `$connect` function first; a non-2xx answer refuses the connection with that
 *    HTTP status (as API Gateway does);
 *  - each text frame is routed by its JSON `action` (route selection `$request.body.action`) or to
 *    `$default`; closing runs `$disconnect`;
 *  - `POST|GET|DELETE /<stage>/@connections/<id>` is the Management API the AWS SDK's
 *    ApiGatewayManagementApiClient calls. An unknown connection answers 410 with
 *    `x-amzn-errortype: GoneException`, which the SDK turns into GoneException.
 * Limits as in AWS: 128 KB per inbound message, 128 KB per posted payload, 10 min idle, 2 h total.
 */

import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyWebsocketEventV2 } from "aws-lambda";
import { type WebSocket, WebSocketServer } from "ws";
import type { LocalFunction } from "./lambda-runtime.ts";
import { readBody } from "./request-body.ts";

const MAX_MESSAGE_BYTES = 128 * 1024;

export interface WebSocketGatewayOptions {
  readonly stage: string;
  readonly routes: ReadonlyMap<string, LocalFunction<APIGatewayProxyWebsocketEventV2, unknown>>;
  readonly idleTimeoutMs?: number;
  readonly maxConnectionMs?: number;
}

interface LocalConnection {
  readonly id: string;
  readonly socket: WebSocket;
  readonly connectedAt: number;
  readonly sourceIp: string;
  readonly userAgent: string;
  lastActiveAt: number;
  timers: NodeJS.Timeout[];
}

/** Counters a test or benchmark can read. */
export interface WebSocketGatewayStats {
  connections: number;
  framesPosted: number;
  largestFramePosted: number;
  goneAnswers: number;
}

/** Ids shaped like API Gateway's (base64 with a trailing "="), so clients must percent-encode them. */
const connectionId = (): string => randomBytes(11).toString("base64").replace(/\+/g, "A").replace(/\//g, "B");

export class WebSocketGateway {
  private readonly server: http.Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  private readonly connections = new Map<string, LocalConnection>();
  private ready = false;
  readonly stats: WebSocketGatewayStats = {
    connections: 0,
    framesPosted: 0,
    largestFramePosted: 0,
    goneAnswers: 0,
  };
  private domain = "127.0.0.1";
  /** Route invocations still running: close() lets them finish ($disconnect included). */
  private readonly inflight = new Set<Promise<number>>();

  constructor(private readonly options: WebSocketGatewayOptions) {
    this.server = http.createServer((req, res) => {
      this.management(req, res).catch(() => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end('{"message":"Internal server error"}');
      });
    });
    this.server.on("upgrade", (req, socket, head) => {
      this.upgrade(req, socket as import("node:net").Socket, head).catch(() => socket.destroy());
    });
  }

  async listen(port: number): Promise<{ wsUrl: string; managementEndpoint: string }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => resolve());
    });
    const actual = (this.server.address() as AddressInfo).port;
    this.domain = `127.0.0.1:${actual}`;
    return {
      wsUrl: `ws://127.0.0.1:${actual}/${this.options.stage}`,
      managementEndpoint: `http://127.0.0.1:${actual}/${this.options.stage}`,
    };
  }

  /** The ids of the open connections (as `$connect` saw them). */
  connectionIds(): string[] {
    return [...this.connections.keys()];
  }

  /** Drops every connection as a network failure would (no close frame); answers how many. */
  dropAll(): number {
    const all = [...this.connections.values()];
    for (const c of all) c.socket.terminate();
    return all.length;
  }

  async close(): Promise<void> {
    for (const c of this.connections.values()) c.socket.terminate();
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.allSettled([...this.inflight]);
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private event(
    c: Pick<LocalConnection, "id" | "connectedAt" | "sourceIp" | "userAgent">,
    routeKey: string,
    eventType: "CONNECT" | "MESSAGE" | "DISCONNECT",
    extra: Record<string, unknown> = {},
  ): APIGatewayProxyWebsocketEventV2 {
    const now = Date.now();
    return {
      requestContext: {
        routeKey,
        eventType,
        messageId: eventType === "MESSAGE" ? randomUUID() : undefined,
        extendedRequestId: randomUUID(),
        requestTime: new Date(now).toUTCString(),
        messageDirection: "IN",
        stage: this.options.stage,
        connectedAt: c.connectedAt,
        requestTimeEpoch: now,
        requestId: randomUUID(),
        domainName: this.domain,
        connectionId: c.id,
        apiId: "local",
        identity: { sourceIp: c.sourceIp, userAgent: c.userAgent },
      },
      isBase64Encoded: false,
      ...extra,
    } as unknown as APIGatewayProxyWebsocketEventV2;
  }

  private invoke(routeKey: string, event: APIGatewayProxyWebsocketEventV2): Promise<number> {
    const fn = this.options.routes.get(routeKey);
    if (fn === undefined) return Promise.resolve(200);
    const run = fn.invoke(event).then(
      (result) => (result as { statusCode?: number } | undefined)?.statusCode ?? 200,
      () => 500,
    );
    this.inflight.add(run);
    void run.finally(() => this.inflight.delete(run));
    return run;
  }

  /** The functions are configured: accept connections (until then the upgrade is answered 503). */
  open(): void {
    this.ready = true;
  }

  private async upgrade(
    req: http.IncomingMessage,
    socket: import("node:net").Socket,
    head: Buffer,
  ): Promise<void> {
    if (!this.ready) {
      socket.end(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
      );
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    const info = {
      id: connectionId(),
      connectedAt: Date.now(),
      sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
      userAgent: headers["user-agent"] ?? "",
    };
    const status = await this.invoke(
      "$connect",
      this.event(info, "$connect", "CONNECT", {
        headers,
        ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
      }),
    );
    if (status < 200 || status >= 300) {
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Error"}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, info));
  }

  private accept(socket: WebSocket, info: Omit<LocalConnection, "socket" | "lastActiveAt" | "timers">): void {
    const c: LocalConnection = { ...info, socket, lastActiveAt: Date.now(), timers: [] };
    this.connections.set(c.id, c);
    this.stats.connections++;
    const idle = this.options.idleTimeoutMs ?? 10 * 60_000;
    const resetIdle = (): void => {
      c.lastActiveAt = Date.now();
      for (const t of c.timers.splice(1)) clearTimeout(t);
      c.timers.push(setTimeout(() => socket.close(1001, "Going away"), idle).unref());
    };
    c.timers.push(
      setTimeout(
        () => socket.close(1001, "Going away"),
        this.options.maxConnectionMs ?? 2 * 3600_000,
      ).unref(),
    );
    resetIdle();

    socket.on("message", (data, isBinary) => {
      resetIdle();
      const body = isBinary ? Buffer.from(data as Buffer).toString("base64") : data.toString();
      let routeKey = "$default";
      try {
        const action = (JSON.parse(body) as { action?: unknown }).action;
        if (typeof action === "string" && this.options.routes.has(action) && !action.startsWith("$"))
          routeKey = action;
      } catch {
        // Not JSON: $default.
      }
      void this.invoke(routeKey, this.event(c, routeKey, "MESSAGE", { body, isBase64Encoded: isBinary }));
    });
    socket.on("close", () => {
      for (const t of c.timers) clearTimeout(t);
      this.connections.delete(c.id);
      void this.invoke("$disconnect", this.event(c, "$disconnect", "DISCONNECT"));
    });
    socket.on("error", () => socket.terminate());
  }

  private async management(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const m = new RegExp(`^/${this.options.stage}/@connections/([^/]+)$`).exec(url.pathname);
    if (m?.[1] === undefined) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"message":"Not Found"}');
      return;
    }
    const id = decodeURIComponent(m[1]);
    const data = await readBody(req, MAX_MESSAGE_BYTES);
    if (data === undefined) {
      res.writeHead(413, {
        "content-type": "application/json",
        "x-amzn-errortype": "PayloadTooLargeException",
      });
      res.end('{"message":"Message too long"}');
      req.destroy();
      return;
    }
    const c = this.connections.get(id);
    if (c === undefined || c.socket.readyState !== c.socket.OPEN) {
      this.stats.goneAnswers++;
      res.writeHead(410, { "content-type": "application/json", "x-amzn-errortype": "GoneException" });
      res.end('{"message":null}');
      return;
    }
    switch (req.method) {
      case "POST": {
        await new Promise<void>((resolve, reject) =>
          c.socket.send(data.toString("utf8"), (error) => (error ? reject(error) : resolve())),
        );
        this.stats.framesPosted++;
        this.stats.largestFramePosted = Math.max(this.stats.largestFramePosted, data.length);
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
        return;
      }
      case "GET":
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            ConnectedAt: new Date(c.connectedAt).toISOString(),
            LastActiveAt: new Date(c.lastActiveAt).toISOString(),
            Identity: { SourceIp: c.sourceIp, UserAgent: c.userAgent },
          }),
        );
        return;
      case "DELETE":
        c.socket.close(1000, "Closed by the server");
        res.writeHead(204);
        res.end();
        return;
      default:
        res.writeHead(405, { "content-type": "application/json" });
        res.end('{"message":"Method Not Allowed"}');
    }
  }
}
