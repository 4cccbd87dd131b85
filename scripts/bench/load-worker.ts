/**
 * The benchmark's load generator, in a process of its own. Open model: requests leave at a fixed
 * arrival rate whatever the answers do, and each latency is measured from the moment the request
 * was due — so queueing in the system under test shows in the figures (no coordinated omission).
 * Alongside: WebSocket subscribers (delivery latency) and history readers (read latency, hit rate).
 */
import { randomUUID } from "node:crypto";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Pool } from "undici";
import WebSocket from "ws";
import { messageIdFor } from "../../lambdas/core/ids.ts";
import { signDevToken } from "../local-stack/tokens.ts";
import { openLoop } from "./open-loop.ts";
import { LOOP_RESOLUTION_MS, loopDelaySummary } from "./stats.ts";

export interface SetupRequest {
  readonly type: "setup";
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly secret: string;
  readonly threads: number;
  readonly subscribedThreads: number;
}

export interface StepRequest {
  readonly type: "step";
  readonly rate: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly readRate: number;
  /**
   * Act as a client that retries: a try that fails (a 5xx, 409 or a dropped connection) is sent
   * again with the same client_message_id after its Retry-After (1 s without one), until this
   * long after it was due. Without it, every request is sent once.
   */
  readonly retryForMs?: number;
}

/** One write of a retrying step: when it was due (ms after the step began) and how it went. */
export interface WriteOutcome {
  readonly dueMs: number;
  /** Due → 201 (ms), or null: never accepted within the retry window. */
  readonly latencyMs: number | null;
  readonly attempts: number;
}

export interface AcceptedMessage {
  readonly id: string;
  /** Epoch ms the request was due. */
  readonly dueAt: number;
  readonly measured: boolean;
}

export interface StepResult {
  readonly type: "step";
  readonly rate: number;
  readonly sent: number;
  readonly accepted: AcceptedMessage[];
  /** Requests not accepted (after their retries, in a retrying step), apart from those shed. */
  readonly failed: number;
  /** Requests refused with 503 overloaded (shed at admission), and how fast that answer came. */
  readonly shed: number;
  readonly shedLatencies: number[];
  readonly statuses: Record<string, number>;
  /** A retrying step's writes, in the order they were due. */
  readonly outcomes?: WriteOutcome[];
  /** ms, measured requests only (after warm-up). */
  readonly acceptLatencies: number[];
  readonly measuredSeconds: number;
  /** Due → frame received by the subscriber (ms). */
  readonly deliveryLatencies: number[];
  /** 2xx received → frame received (ms; negative: the frame came first). */
  readonly deliveryAfterAnswer: number[];
  readonly readLatencies: number[];
  readonly readHits: number;
  readonly readMisses: number;
  readonly serverTimings: Record<string, number[]>;
  /** How late the generator sent each measured request (ms): part of the latencies, not the system's. */
  readonly sendLateness: number[];
  /** The load generator's own event-loop delay (ms): its share of the measured latencies. */
  readonly loopDelay: { p50: number; p99: number; max: number };
  /** CPU the load generator used during the step, per request (ms). */
  readonly cpuPerRequestMs: number;
}

interface BenchThread {
  readonly id: string;
  readonly token: string;
  readonly userId: string;
}

/** undici: the lightest well-kept HTTP client for Node, so the generator spends little of the CPU it measures. */
let pool: Pool | undefined;
const epoch = (t: number): number => performance.timeOrigin + t;

const request = async (
  url: URL,
  method: "GET" | "POST",
  token: string,
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> => {
  pool ??= new Pool(url.origin, { connections: 256, keepAliveTimeout: 60_000 });
  const res = await pool.request({
    path: url.pathname + url.search,
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body } : {}),
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
};

let setup: SetupRequest;
let threads: BenchThread[] = [];
const sockets: WebSocket[] = [];
/** Delivery bookkeeping: message id → when it was due / answered; frames → when received. */
const dueById = new Map<string, number>();
const answeredById = new Map<string, number>();
const receivedById = new Map<string, number>();

const prepare = async (req: SetupRequest): Promise<void> => {
  setup = req;
  threads = await Promise.all(
    Array.from({ length: req.threads }, async (_, i) => {
      const userId = `bench-${i}-${randomUUID().slice(0, 8)}`;
      const token = await signDevToken({ secret: req.secret, sub: userId });
      const res = await request(new URL("/api/threads", req.httpUrl), "POST", token, "{}");
      if (res.status !== 201) throw new Error(`thread creation failed: ${res.status} ${res.body}`);
      return { id: (JSON.parse(res.body) as { id: string }).id, token, userId };
    }),
  );
  for (const thread of threads.slice(0, req.subscribedThreads)) {
    const ws = new WebSocket(`${req.wsUrl}?token=${thread.token}`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; message?: { id: string } };
      if (frame.type === "message.created" && frame.message)
        receivedById.set(frame.message.id, epoch(performance.now()));
    });
    ws.send(JSON.stringify({ action: "subscribe", threadId: thread.id }));
    sockets.push(ws);
  }
};

const runStep = async (req: StepRequest): Promise<StepResult> => {
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const accepted: AcceptedMessage[] = [];
  const acceptLatencies: number[] = [];
  const statuses: Record<string, number> = {};
  const serverTimings: Record<string, number[]> = {};
  let failed = 0;
  let shed = 0;
  const shedLatencies: number[] = [];
  const outcomes: WriteOutcome[] | undefined = req.retryForMs === undefined ? undefined : [];
  const stepStart = performance.now();
  const totalMs = req.warmupMs + req.durationMs;
  const measureFrom = performance.now() + req.warmupMs;
  const measuredIds = new Set<string>();
  const readLatencies: number[] = [];
  let readHits = 0;
  let readMisses = 0;

  const sendLateness: number[] = [];
  const writes = openLoop(req.rate, totalMs, async (i, due) => {
    if (due >= measureFrom) sendLateness.push(performance.now() - due);
    const thread = threads[i % threads.length] as BenchThread;
    const clientMessageId = randomUUID();
    const id = messageIdFor(thread.id, thread.userId, clientMessageId);
    const measured = due >= measureFrom;
    dueById.set(id, epoch(due));
    const body = JSON.stringify({
      message: `bench message ${i} ${"x".repeat(120)}`,
      client_message_id: clientMessageId,
    });
    const url = new URL(`/api/threads/${thread.id}/messages`, setup.httpUrl);
    let attempts = 0;
    for (;;) {
      attempts++;
      let res: Awaited<ReturnType<typeof request>> | undefined;
      try {
        res = await request(url, "POST", thread.token, body);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      } catch {
        statuses.error = (statuses.error ?? 0) + 1;
      }
      const end = performance.now();
      if (res?.status === 201) {
        accepted.push({ id, dueAt: epoch(due), measured });
        answeredById.set(id, epoch(end));
        outcomes?.push({ dueMs: due - stepStart, latencyMs: end - due, attempts });
        if (measured) {
          acceptLatencies.push(end - due);
          measuredIds.add(id);
          for (const part of String(res.headers["server-timing"] ?? "").split(", ")) {
            const [name, dur] = part.split(";dur=");
            if (!name || !dur) continue;
            const timings = serverTimings[name] ?? [];
            timings.push(Number(dur));
            serverTimings[name] = timings;
          }
        }
        return;
      }
      const wait = 1000 * (Number(res?.headers["retry-after"]) || 1);
      if (req.retryForMs === undefined || end + wait - due > req.retryForMs) {
        if (res?.status === 503 && res.body.includes('"overloaded"')) {
          shed++;
          if (measured) shedLatencies.push(end - due);
        } else failed++;
        outcomes?.push({ dueMs: due - stepStart, latencyMs: null, attempts });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  });

  const reads =
    req.readRate > 0
      ? openLoop(req.readRate, totalMs, async (i, due) => {
          const thread = threads[(i * 7) % Math.max(1, setup.subscribedThreads)] as BenchThread;
          try {
            const res = await request(
              new URL(`/api/threads/${thread.id}/messages?limit=50`, setup.httpUrl),
              "GET",
              thread.token,
            );
            if (due >= measureFrom && res.status === 200) {
              readLatencies.push(performance.now() - due);
              if (res.headers["x-served-from"] === "cache") readHits++;
              else readMisses++;
            }
          } catch {
            // counted as neither hit nor miss; the write path is what the step measures
          }
        })
      : Promise.resolve();

  await Promise.all([writes, reads]);
  // Frames travel before the answers; a last look once everything has settled.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const deliveryLatencies: number[] = [];
  const deliveryAfterAnswer: number[] = [];
  for (const id of measuredIds) {
    const received = receivedById.get(id);
    if (received === undefined) continue;
    deliveryLatencies.push(received - (dueById.get(id) as number));
    deliveryAfterAnswer.push(received - (answeredById.get(id) as number));
  }
  dueById.clear();
  answeredById.clear();
  receivedById.clear();
  return {
    type: "step",
    rate: req.rate,
    sent: Math.round((req.rate * totalMs) / 1000),
    accepted,
    failed,
    shed,
    shedLatencies,
    statuses,
    ...(outcomes !== undefined ? { outcomes: outcomes.sort((a, b) => a.dueMs - b.dueMs) } : {}),
    acceptLatencies,
    measuredSeconds: req.durationMs / 1000,
    deliveryLatencies,
    deliveryAfterAnswer,
    readLatencies,
    readHits,
    readMisses,
    serverTimings,
    sendLateness,
    loopDelay: loopDelaySummary(loop),
    cpuPerRequestMs:
      ((cpu) => (cpu.user + cpu.system) / 1000)(process.cpuUsage(cpu0)) /
      Math.max(1, Math.round((req.rate * totalMs) / 1000)),
  };
};

// The benchmark died or was interrupted: no load keeps running.
process.once("disconnect", () => process.exit(1));

process.on("message", async (message: SetupRequest | StepRequest | { type: "close" }) => {
  if (message.type === "setup") {
    await prepare(message);
    process.send?.({ type: "ready", threads: threads.map((t) => t.id) });
  } else if (message.type === "step") {
    process.send?.(await runStep(message));
  } else {
    for (const ws of sockets) ws.close();
    await pool?.close();
    process.exit(0);
  }
});
