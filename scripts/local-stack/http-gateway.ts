/**
 * A local API Gateway HTTP API: matches requests against the deployed route keys and invokes the
 * route's function with a payload-format-2.0 event, then writes its result back as API Gateway
 * does (including the "inferred" format and a 500 for a failed invocation).
 *
 * CORS as the deployed API has it (lib/shared/cors.ts): a preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is answered 204 by the gateway itself, without running a
 * function; every answer to an allowed origin carries Access-Control-Allow-Origin and
 * Access-Control-Expose-Headers, and every answer carries Timing-Allow-Origin.
 */

import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { OverloadedError } from "../../lambdas/core/errors.ts";
import { AdmissionGate, admit, LoadMonitor } from "../../lambdas/runtime/admission.ts";
import { config } from "../../lambdas/runtime/config.ts";
import { errorResponse } from "../../lambdas/runtime/http-response.ts";
import {
  CORS_ALLOW_HEADERS,
  CORS_ALLOW_METHODS,
  CORS_EXPOSE_HEADERS,
  originAllowed,
  validateOrigins,
} from "../../lib/shared/cors.ts";
import type { LocalFunction } from "./lambda-runtime.ts";
import { readBody } from "./request-body.ts";

export interface HttpRoute {
  readonly routeKey: string;
  readonly fn: LocalFunction<APIGatewayProxyEventV2, unknown>;
  /** Refused with 503 overloaded before the function runs when this process is overloaded. */
  readonly shed?: boolean;
}

interface CompiledRoute extends HttpRoute {
  readonly method: string;
  readonly pattern: RegExp;
  readonly params: string[];
}

/** API Gateway's own payload limit for HTTP APIs is 10 MB; Lambda's is 6 MB. */
const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

const compile = (route: HttpRoute): CompiledRoute => {
  const [method = "", template = ""] = route.routeKey.split(" ");
  const params: string[] = [];
  const source = template
    .split("/")
    .map((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment);
      if (param?.[1] === undefined) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      params.push(param[1]);
      return "([^/]+)";
    })
    .join("/");
  return { ...route, method, pattern: new RegExp(`^${source}$`), params };
};

/** Percent-decoded like API Gateway does; a malformed escape is passed on as it came. */
const decodePathParameter = (raw: string): string => {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
};

const TEXT_TYPES = /^(application\/(.+\+)?json|text\/|application\/x-www-form-urlencoded|application\/xml)/i;

const joinHeaders = (req: http.IncomingMessage): Record<string, string> => {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  }
  return headers;
};

const queryParameters = (search: URLSearchParams): Record<string, string> | undefined => {
  const out: Record<string, string> = {};
  for (const key of new Set(search.keys())) out[key] = search.getAll(key).join(",");
  return Object.keys(out).length > 0 ? out : undefined;
};

const send = (
  res: http.ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(body);
};

export interface LocalCors {
  /** Origins allowed to call the API from a browser ("*" alone for any). */
  readonly allowedOrigins: readonly string[];
  /** @default 600 */
  readonly maxAgeSeconds?: number;
}

/** Origins a browser page served by a local development server uses. */
export const DEFAULT_CORS_ORIGINS: readonly string[] = ["http://127.0.0.1:3000", "http://localhost:3000"];

/** CORS_ALLOWED_ORIGINS (comma-separated; empty: no origin) or the defaults; a bad origin stops the start. */
export const corsFromEnvironment = (value: string | undefined): LocalCors => {
  if (value === undefined) return { allowedOrigins: DEFAULT_CORS_ORIGINS };
  const allowedOrigins = value
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o.length > 0);
  const problems = validateOrigins(allowedOrigins);
  if (problems.length > 0) throw new Error(`CORS_ALLOWED_ORIGINS: ${problems.join("; ")}`);
  return { allowedOrigins };
};

/** What else the gateway's port serves, outside /api (the web client). */
export interface SiteHandler {
  handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean>;
}

export class HttpGateway {
  private site: SiteHandler | undefined;
  private readonly routes: CompiledRoute[];
  private readonly fallback: CompiledRoute | undefined;
  private readonly server: http.Server;
  private readonly cors: LocalCors;
  /**
   * The gateway's own admission, as API Gateway throttles before Lambda: in one process serving
   * every function, shedding in the handler comes after the request's parsing and the function's
   * middleware, which costs the CPU an overloaded process lacks. Built on first use (the
   * configuration is in place by then).
   */
  private gate: { monitor: LoadMonitor; gate: AdmissionGate } | undefined;
  /**
   * Until the stack has configured the functions (the queues, the @connections endpoint: after
   * the ports are open), API requests are answered 503 with Retry-After rather than run: a
   * function that read its configuration then would answer 500.
   */
  private ready = false;

  constructor(routes: readonly HttpRoute[], cors: LocalCors = { allowedOrigins: [] }) {
    this.cors = cors;
    const compiled = routes.map(compile);
    this.routes = compiled.filter((r) => r.routeKey !== "$default");
    this.fallback = compiled.find((r) => r.routeKey === "$default");
    this.server = http.createServer((req, res) => {
      this.applyCors(req, res);
      this.handle(req, res).catch(() => send(res, 500, '{"message":"Internal Server Error"}'));
    });
    this.server.keepAliveTimeout = 65_000;
    // Requests Node cannot parse (oversized headers, bad request lines) get a JSON answer, as from
    // API Gateway, rather than an empty one.
    this.server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return;
      const tooLarge = error.code === "HPE_HEADER_OVERFLOW";
      const status = tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request";
      const body = JSON.stringify({ message: tooLarge ? "Request Header Fields Too Large" : "Bad Request" });
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  }

  /** The functions are configured: serve API requests. */
  open(): void {
    this.ready = true;
  }

  /** Serves the site on this port too, for every path outside /api. */
  serveSite(site: SiteHandler): void {
    this.site = site;
  }

  async listen(port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => resolve());
    });
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private match(
    method: string,
    path: string,
  ): { route: CompiledRoute; params: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method && route.method !== "ANY") continue;
      const m = route.pattern.exec(path);
      if (m === null) continue;
      const params: Record<string, string> = {};
      route.params.forEach((name, i) => {
        params[name] = decodePathParameter(m[i + 1] ?? "");
      });
      return { route, params };
    }
    return this.fallback === undefined ? undefined : { route: this.fallback, params: {} };
  }

  /** The CORS headers of every answer; a preflight is answered here and then. */
  private applyCors(req: http.IncomingMessage, res: http.ServerResponse): void {
    const { allowedOrigins } = this.cors;
    if (allowedOrigins.length === 0) return;
    res.setHeader("Timing-Allow-Origin", allowedOrigins.join(", "));
    const origin = req.headers.origin;
    if (origin === undefined) return;
    res.setHeader("Vary", "Origin");
    if (originAllowed(origin, allowedOrigins)) {
      res.setHeader("Access-Control-Allow-Origin", allowedOrigins.includes("*") ? "*" : origin);
      res.setHeader("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS.join(","));
    }
  }

  private isPreflight(req: http.IncomingMessage): boolean {
    return (
      this.cors.allowedOrigins.length > 0 &&
      req.method === "OPTIONS" &&
      req.headers.origin !== undefined &&
      req.headers["access-control-request-method"] !== undefined
    );
  }

  /** 204 with the allowed methods and headers (none for an origin that is not allowed): no function runs. */
  private answerPreflight(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (originAllowed(req.headers.origin ?? "", this.cors.allowedOrigins)) {
      res.setHeader("Access-Control-Allow-Methods", CORS_ALLOW_METHODS.join(","));
      res.setHeader("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS.join(","));
      res.setHeader("Access-Control-Max-Age", String(this.cors.maxAgeSeconds ?? 600));
    }
    res.removeHeader("Access-Control-Expose-Headers");
    res.writeHead(204);
    res.end();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (this.site !== undefined && !path.startsWith("/api") && (await this.site.handle(req, res))) return;
    if (this.isPreflight(req)) {
      req.resume();
      this.answerPreflight(req, res);
      return;
    }
    if (!this.ready) {
      req.resume();
      send(res, 503, '{"message":"Service Unavailable"}', { "retry-after": "1" });
      return;
    }
    const body = await readBody(req, MAX_REQUEST_BYTES);
    if (body === undefined) {
      send(res, 413, '{"message":"Request Entity Too Large"}');
      req.destroy();
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = (req.method ?? "GET").toUpperCase();
    const matched = this.match(method, url.pathname);
    if (matched === undefined) {
      send(res, 404, '{"message":"Not Found"}');
      return;
    }
    let leave: (() => void) | undefined;
    if (matched.route.shed === true) {
      const admitted = this.admit();
      if (admitted instanceof OverloadedError) {
        const response = errorResponse(admitted, {
          unavailableRetryAfterSeconds: config().RETRY_AFTER_SECONDS,
        });
        send(
          res,
          response.statusCode ?? 503,
          String(response.body),
          response.headers as Record<string, string>,
        );
        return;
      }
      leave = admitted;
    }
    try {
      await this.invoke(req, res, url, method, body, matched);
    } finally {
      leave?.();
    }
  }

  /** Lets a request of a shed route in (the returned function ends it), or says why it is shed. */
  private admit(): (() => void) | OverloadedError {
    const cfg = config();
    this.gate ??= ((monitor) => ({
      monitor,
      gate: new AdmissionGate(monitor, {
        maxInFlight: cfg.ADMISSION_MAX_INFLIGHT,
        maxLagMs: cfg.OVERLOAD_LAG_MS,
        retryAfterSeconds: cfg.OVERLOAD_RETRY_AFTER_SECONDS,
      }),
    }))(new LoadMonitor({ maxLagMs: cfg.OVERLOAD_LAG_MS }));
    try {
      return admit(this.gate.monitor, this.gate.gate);
    } catch (error) {
      if (error instanceof OverloadedError) return error;
      throw error;
    }
  }

  private async invoke(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    method: string,
    body: Buffer,
    matched: { route: CompiledRoute; params: Record<string, string> },
  ): Promise<void> {
    const headers = joinHeaders(req);
    const query = queryParameters(url.searchParams);
    const textual = TEXT_TYPES.test(headers["content-type"] ?? "application/json");
    const now = new Date();
    const event: APIGatewayProxyEventV2 = {
      version: "2.0",
      routeKey: matched.route.routeKey,
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers,
      ...(query ? { queryStringParameters: query } : {}),
      ...(matched.route.params.length > 0 ? { pathParameters: matched.params } : {}),
      requestContext: {
        accountId: "000000000000",
        apiId: "local",
        domainName: headers.host ?? "127.0.0.1",
        domainPrefix: "local",
        http: {
          method,
          path: url.pathname,
          protocol: `HTTP/${req.httpVersion}`,
          sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
          userAgent: headers["user-agent"] ?? "",
        },
        requestId: randomUUID(),
        routeKey: matched.route.routeKey,
        stage: "$default",
        time: now.toISOString(),
        timeEpoch: now.getTime(),
      },
      ...(body.length > 0 ? { body: textual ? body.toString("utf8") : body.toString("base64") } : {}),
      isBase64Encoded: body.length > 0 && !textual,
    };

    let result: unknown;
    try {
      result = await matched.route.fn.invoke(event);
    } catch {
      send(res, 500, '{"message":"Internal Server Error"}');
      return;
    }
    this.write(res, result);
  }

  /** Payload format 2.0: a result without statusCode is JSON-encoded as a 200 body. */
  private write(res: http.ServerResponse, result: unknown): void {
    if (typeof result !== "object" || result === null || !("statusCode" in result)) {
      send(res, 200, typeof result === "string" ? result : JSON.stringify(result ?? null));
      return;
    }
    const r = result as APIGatewayProxyStructuredResultV2;
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(r.headers ?? {})) {
      // As API Gateway with CORS configured: the function's own CORS headers are ignored.
      if (this.cors.allowedOrigins.length > 0 && /^access-control-/i.test(k)) continue;
      headers[k] = String(v);
    }
    if (r.cookies !== undefined && r.cookies.length > 0) headers["set-cookie"] = r.cookies;
    const body = r.body === undefined ? "" : r.isBase64Encoded ? Buffer.from(r.body, "base64") : r.body;
    res.writeHead(r.statusCode ?? 200, headers);
    res.end(body);
  }
}
