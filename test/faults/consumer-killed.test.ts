/**
 * The persist consumer killed (SIGKILL) in the middle of a batch — while its insert waits, and
 * after its insert committed but before the batch was deleted from the queue: the batch comes back
 * after the visibility timeout and every message ends up stored exactly once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accepted, checkLedger, LoadGenerator } from "../support/load.ts";
import { freePort } from "../support/redis-server.ts";
import { blackhole } from "../support/tcp-proxy.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
let t: TestStack;
const children: ChildProcess[] = [];

beforeAll(async () => {
  t = await startTestStack({
    startConsumers: false,
    env: { RATE_LIMIT_PER_SECOND: "0" },
    consumers: { persist: { visibilityTimeoutSeconds: 2, maxReceiveCount: 10 } },
  });
  t.stack.eventSources.analytics.start();
});

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await t.stop();
});

/** A persist consumer in its own process, polling the stack's persist queue. */
const spawnConsumer = async (env: Record<string, string> = {}): Promise<ChildProcess> => {
  // Node itself with the tsx loader (the tsx CLI would run the script in a grandchild that SIGKILL
  // does not reach).
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/consumer-process.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      CONSUMER_QUEUE_URL: t.stack.queues.persist.url,
      CONSUMER_QUEUE_ARN: t.stack.queues.persist.arn,
      CONSUMER_SQS_ENDPOINT: t.stack.sqsEndpoint,
      LOG_LEVEL: "SILENT",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`consumer exited early (${code})`)));
    child.stdout?.on("data", (data: Buffer) => {
      if (data.toString().includes("ready")) resolve();
    });
  });
  return child;
};

const kill = async (child: ChildProcess): Promise<void> => {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
};

const queueSome = async (count: number): Promise<LoadGenerator> => {
  const load = await LoadGenerator.withThreads(t, 4, 40);
  load.start();
  await load.answered(count);
  await load.stop();
  expect(load.attempts.every((a) => a.status === 201)).toBe(true);
  return load;
};

describe("a persist consumer killed mid-batch", () => {
  it("after its insert committed, before the batch was deleted: redelivered, stored once", async () => {
    const load = await queueSome(40);
    // The consumer's Redis accepts connections and never answers (with a one-minute timeout): after
    // its insert (and its forward to the analytics queue) the consumer waits there, inside the
    // batch, until it is killed.
    const port = await freePort();
    const hole = await blackhole(port);
    const child = await spawnConsumer({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      REDIS_COMMAND_TIMEOUT_MS: "60000",
    });
    const ids = accepted(load.attempts).map((a) => a.messageId);
    await waitFor(
      async () => (await Promise.all(ids.map((id) => t.rowsInPostgres(id)))).every((n) => n === 1),
      {
        what: "the batch committed by the doomed consumer",
      },
    );
    await kill(child);
    await hole.close();

    const before = t.stack.eventSources.persist.stats.records;
    t.stack.eventSources.persist.start();
    // The killed consumer never deleted its batch: it comes back and is processed again, idempotently.
    await waitFor(() => t.stack.eventSources.persist.stats.records - before >= ids.length, {
      what: "the batch redelivered",
    });
    await checkLedger(t, load.attempts);
    await t.stack.eventSources.persist.stop();
  });

  it("while its insert waits for a lock: rolled back or committed, then redelivered, stored once", async () => {
    const load = await queueSome(40);
    const locker = await t.pg.connect();
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
    const child = await spawnConsumer();
    await waitFor(
      async () => {
        const { rows } = await t.pg.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%jsonb_to_recordset%' AND pid <> pg_backend_pid()`,
        );
        return (rows[0]?.n ?? 0) > 0;
      },
      { what: "the consumer's insert waiting on the lock" },
    );
    await kill(child);
    await locker.query("ROLLBACK");
    locker.release();

    const before = t.stack.eventSources.persist.stats.records;
    t.stack.eventSources.persist.start();
    const ids = accepted(load.attempts).map((a) => a.messageId);
    await waitFor(() => t.stack.eventSources.persist.stats.records - before >= ids.length, {
      what: "the batch redelivered",
    });
    await checkLedger(t, load.attempts);
    await t.stack.eventSources.persist.stop();
  });
});
