/**
 * Runs a handler module the way the Lambda service does: loads it once (cold start), then invokes
 * its `handler` export with an event and a Context whose remaining time counts down to the
 * function's timeout. A handler that overruns its timeout is reported as a timeout error.
 */
import { randomUUID } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Context } from "aws-lambda";

export type Handler<E = unknown, R = unknown> = (event: E, context: Context) => Promise<R>;

export class LambdaTimeoutError extends Error {
  override readonly name = "LambdaTimeoutError";
}

const REPO_ROOT = path.resolve(import.meta.dirname, "../..");

export class LocalFunction<E = unknown, R = unknown> {
  private handler: Promise<Handler<E, R>> | undefined;

  constructor(
    readonly name: string,
    /** Handler file, relative to the repository root (as in lambdas/handlers/catalog.ts). */
    private readonly entry: string,
    private readonly timeoutMs: number,
  ) {}

  private load(): Promise<Handler<E, R>> {
    const bundles = process.env.LOCAL_BUNDLES_DIR;
    const file = bundles ? path.join(bundles, this.name, "index.mjs") : path.join(REPO_ROOT, this.entry);
    this.handler ??= import(pathToFileURL(file).href).then((module) => {
      const handler = (module as { handler?: Handler<E, R> }).handler;
      if (typeof handler !== "function") throw new Error(`${this.entry} has no handler export`);
      return handler;
    });
    return this.handler;
  }

  async invoke(event: E): Promise<R> {
    const handler = await this.load();
    const deadline = Date.now() + this.timeoutMs;
    const requestId = randomUUID();
    const context: Context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: this.name,
      functionVersion: "$LATEST",
      invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${this.name}`,
      memoryLimitInMB: "1024",
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${this.name}`,
      logStreamName: "local",
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new LambdaTimeoutError(`${this.name} timed out after ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    try {
      return await Promise.race([handler(event, context), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
