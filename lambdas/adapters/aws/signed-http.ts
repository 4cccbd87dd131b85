/**
 * A lighter path for the AWS calls the accept path makes per message: SQS SendMessage(Batch) and
 * API Gateway's PostToConnection, once per subscriber. One SigV4-signed request over a keep-alive
 * agent, signed by the SDK's own signer (@smithy/signature-v4, node:crypto SHA-256) with the SDK
 * client's own credentials provider, region and endpoint — so credentials, their refresh and the
 * endpoint configuration stay the SDK's. What it skips is the SDK's per-call machinery (middleware
 * stack, endpoint rules, schema serde), which costs more CPU than the request itself
 * (scripts/bench/sdk-cost.ts).
 *
 * Failures have the shape of the SDK's errors (`name`, `$metadata.httpStatusCode`, `senderFault`),
 * so the adapters' outage classification (isAwsOutage) is the same for both paths. Retries: like
 * the SDK's standard mode, a throttled, 5xx or network-failed attempt is repeated after a jittered
 * pause, up to `maxAttempts`; each attempt has its own timeout.
 */
import http from "node:http";
import https from "node:https";
import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, Provider } from "@smithy/types";

export interface SignedHttpOptions {
  /** The signing name: "sqs", "execute-api". */
  readonly service: string;
  readonly region: string | Provider<string>;
  readonly credentials: AwsCredentialIdentity | Provider<AwsCredentialIdentity>;
  /** Base URL of the service (its path is kept as a prefix of every request's path), or how to find it. */
  readonly endpoint: URL | (() => Promise<URL>);
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly maxSockets?: number;
}

export interface SignedResponse {
  readonly status: number;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** An AWS API answered with an error, or could not be reached: the SDK's error shape. */
export class AwsCallError extends Error {
  readonly $metadata: { httpStatusCode?: number };
  constructor(
    override readonly name: string,
    message: string,
    status: number | undefined,
    readonly senderFault: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.$metadata = status === undefined ? {} : { httpStatusCode: status };
  }
}

const THROTTLING = new Set([
  "ThrottlingException",
  "RequestThrottled",
  "TooManyRequestsException",
  "Throttling",
]);

/** Whether another attempt may succeed (the SDK's standard retry strategy retries the same cases). */
export const isRetryable = (error: unknown): boolean => {
  if (!(error instanceof AwsCallError)) return true;
  const status = error.$metadata.httpStatusCode;
  return status === undefined || status >= 500 || status === 429 || THROTTLING.has(error.name);
};

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Target {
  readonly endpoint: URL;
  readonly agent: http.Agent;
  readonly transport: typeof http | typeof https;
  readonly basePath: string;
}

export class SignedHttp {
  private readonly signer: SignatureV4;
  private target: Promise<Target> | undefined;

  constructor(private readonly options: SignedHttpOptions) {
    this.signer = new SignatureV4({
      service: options.service,
      region: options.region,
      credentials: options.credentials,
      sha256: Sha256,
    });
  }

  /** The endpoint, its agent and transport, resolved once (a failed resolution is tried again). */
  private resolve(): Promise<Target> {
    this.target ??= (async () => {
      const { endpoint: given, maxSockets } = this.options;
      const endpoint = given instanceof URL ? given : await given();
      const secure = endpoint.protocol === "https:";
      return {
        endpoint,
        transport: secure ? https : http,
        agent: new (secure ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: maxSockets ?? 50 }),
        basePath: endpoint.pathname.replace(/\/$/, ""),
      };
    })();
    this.target.catch(() => {
      this.target = undefined;
    });
    return this.target;
  }

  /** Sends one request (with retries); resolves with any HTTP answer, rejects only without one. */
  async request(
    method: string,
    path: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<SignedResponse> {
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await this.attempt(method, path, body, headers);
        if (attempt < this.options.maxAttempts && (response.status >= 500 || response.status === 429)) {
          await pause(Math.random() * 100 * attempt);
          continue;
        }
        return response;
      } catch (error) {
        if (attempt >= this.options.maxAttempts) throw error;
        await pause(Math.random() * 100 * attempt);
      }
    }
  }

  private async attempt(
    method: string,
    path: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<SignedResponse> {
    const { endpoint, agent, transport, basePath } = await this.resolve();
    const signed = await this.signer.sign({
      method,
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      ...(endpoint.port !== "" ? { port: Number(endpoint.port) } : {}),
      path: `${basePath}${path}`,
      query: {},
      headers: {
        ...headers,
        host: endpoint.host,
        "content-length": String(Buffer.byteLength(body)),
      },
      body,
    });
    return await new Promise<SignedResponse>((resolve, reject) => {
      const req = transport.request(
        {
          method,
          protocol: endpoint.protocol,
          hostname: endpoint.hostname,
          port: endpoint.port === "" ? undefined : Number(endpoint.port),
          path: signed.path,
          headers: signed.headers,
          agent,
          timeout: this.options.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString("utf8"),
              headers: res.headers,
            }),
          );
          res.on("error", (error) => reject(networkError(error)));
        },
      );
      // A whole-request deadline, as the SDK's requestTimeout with throwOnRequestTimeout.
      const deadline = setTimeout(() => {
        req.destroy(
          new AwsCallError("TimeoutError", `no answer within ${this.options.timeoutMs} ms`, undefined, false),
        );
      }, this.options.timeoutMs);
      req.on("close", () => clearTimeout(deadline));
      req.on("error", (error) => reject(error instanceof AwsCallError ? error : networkError(error)));
      req.end(body);
    });
  }

  close(): void {
    void this.target?.then(
      (t) => t.agent.destroy(),
      () => undefined,
    );
  }
}

const networkError = (error: Error): AwsCallError =>
  new AwsCallError((error as { code?: string }).code ?? error.name, error.message, undefined, false, {
    cause: error,
  });

/** The error an AWS JSON protocol answer carries (`__type`, `message`), in the SDK's shape. */
export const jsonError = (response: SignedResponse): AwsCallError => {
  let type = "UnknownError";
  let message = `HTTP ${response.status}`;
  try {
    const parsed = JSON.parse(response.body) as { __type?: string; message?: string; Message?: string };
    if (parsed.__type !== undefined) type = parsed.__type.split("#").at(-1) ?? parsed.__type;
    message = parsed.message ?? parsed.Message ?? message;
  } catch {
    // not JSON: keep the status
  }
  // SQS tells the query-protocol code and its fault this way (e.g. "AWS.SimpleQueueService.NonExistentQueue;Sender").
  const queryError = response.headers["x-amzn-query-error"];
  const [code, fault] = typeof queryError === "string" ? queryError.split(";") : [];
  const senderFault =
    fault === "Sender" || (fault === undefined && response.status >= 400 && response.status < 500);
  return new AwsCallError(
    code !== undefined && code !== "" ? code : type,
    message,
    response.status,
    senderFault && !THROTTLING.has(type) && response.status !== 429,
  );
};
