/**
 * The HTTP handler every AWS SDK client of the project uses: keep-alive connections (the SDK does
 * not keep plain-HTTP connections alive by default, which local endpoints use, and a new connection
 * per call costs ~0.2 ms of CPU on each side — scripts/bench/sdk-cost.ts), and tight timeouts.
 */
import http from "node:http";
import https from "node:https";
import { NodeHttpHandler } from "@smithy/node-http-handler";

export const keepAliveHandler = (options: { timeoutMs: number; maxSockets?: number }): NodeHttpHandler =>
  new NodeHttpHandler({
    httpAgent: new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 50 }),
    httpsAgent: new https.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 50 }),
    connectionTimeout: options.timeoutMs,
    requestTimeout: options.timeoutMs,
    // Without this the handler only logs a warning when the request timeout passes, and the call
    // waits for as long as the endpoint takes: a slow SQS would hold the accept path.
    throwOnRequestTimeout: true,
  });
