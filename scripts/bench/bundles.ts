/**
 * Each Lambda's bundle, built with the CDK app's own esbuild settings (lib/constructs/chat-function.ts):
 * its minified size, and its module initialisation time — loading the bundle in a fresh Node 22
 * process, as Lambda's init phase does before the first invocation (median of several runs).
 */
import { execFile } from "node:child_process";
import { mkdir, stat } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import * as esbuild from "esbuild";
import {
  CONSUMER_FUNCTIONS,
  HTTP_FUNCTIONS,
  SCHEDULED_FUNCTIONS,
  WEBSOCKET_FUNCTIONS,
} from "../../lambdas/handlers/catalog.ts";
import { BUNDLING } from "../../lib/constructs/chat-function.ts";
import { percentile } from "./stats.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const OUT = path.join(ROOT, ".local/bundles");
const RUNS = 5;

export interface BundleReport {
  readonly id: string;
  readonly bytes: number;
  readonly initMs: number;
}

/** What a cold start needs in the environment for the configuration to load. */
const COLD_START_ENV = {
  PERSIST_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/111111111111/persist",
  ANALYTICS_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/111111111111/analytics",
  DATABASE_URL: "postgres://app@127.0.0.1:5432/chat",
  JWT_SECRET: "bench-secret-bench-secret-bench-secret",
  WEBSOCKET_API_ENDPOINT: "https://example.execute-api.us-east-1.amazonaws.com/prod",
  AWS_REGION: "us-east-1",
  AWS_EC2_METADATA_DISABLED: "true",
  LOG_LEVEL: "ERROR",
};

const functions = [
  ...HTTP_FUNCTIONS,
  ...WEBSOCKET_FUNCTIONS,
  ...Object.values(CONSUMER_FUNCTIONS),
  ...Object.values(SCHEDULED_FUNCTIONS),
];

const build = async (id: string, entry: string): Promise<string> => {
  const outfile = path.join(OUT, id, "index.mjs");
  await mkdir(path.dirname(outfile), { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: BUNDLING.target ?? "node22",
    minify: BUNDLING.minify ?? true,
    keepNames: BUNDLING.keepNames ?? true,
    mainFields: BUNDLING.mainFields ?? ["module", "main"],
    external: [...(BUNDLING.externalModules ?? [])],
    banner: { js: BUNDLING.banner ?? "" },
    logLevel: "error",
  });
  return outfile;
};

const initTime = async (bundle: string): Promise<number> => {
  const script = `const t = performance.now(); await import(${JSON.stringify(bundle)}); process.stdout.write(String(performance.now() - t)); process.exit(0);`;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ...COLD_START_ENV },
    timeout: 30_000,
  });
  return Number(stdout);
};

export const measureBundles = async (): Promise<BundleReport[]> => {
  const reports: BundleReport[] = [];
  for (const fn of functions) {
    const bundle = await build(fn.id, fn.entry);
    const { size } = await stat(bundle);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) times.push(await initTime(bundle));
    const report = {
      id: fn.id,
      bytes: size,
      initMs:
        Math.round(
          percentile(
            [...times].sort((a, b) => a - b),
            50,
          ) * 10,
        ) / 10,
    };
    console.log(`  ${fn.id.padEnd(16)} ${(size / 1024).toFixed(0).padStart(5)} KB  init ${report.initMs} ms`);
    reports.push(report);
  }
  return reports;
};

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  await measureBundles();
}
