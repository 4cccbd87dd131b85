/**
 * The benchmark's load generator, in a process of its own. Open model: requests leave at a fixed
 * arrival rate whatever the answers do, and each latency is measured from the moment the request
 * was due — so queueing in the system under test shows in the figures (no coordinated omission).
 * Alongside: WebSocket subscribers (delivery latency) and history readers (read latency, hit rate).
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import WebSocket from "ws";
import { messageIdFor } from "../../lambdas/core/ids.ts";
import { signDevToken } from "../local-stack/tokens.ts";

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
  readonly failed: number;
  readonly statuses: Record<string, number>;
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
}

interface BenchThread {
  readonly id: string;
  readonly token: string;
  readonly userId: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
const epoch = (t: number): number => performance.timeOrigin + t;

const request = (
  url: URL,
  method: string,
  token: string,
  body?: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> =>
  new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined
            ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });

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

/** Calls `fire(i, dueTime)` at `rate` per second for `durationMs`; resolves when all have settled. */
const openLoop = async (
  rate: number,
  durationMs: number,
  fire: (i: number, due: number) => Promise<void>,
) => {
  const total = Math.round((rate * durationMs) / 1000);
  const start = performance.now();
  const inflight = new Set<Promise<void>>();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000) + 1);
      while (sent < due) {
        const p = fire(sent, start + (sent * 1000) / rate);
        sent++;
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all([...inflight]);
};

const runStep = async (req: StepRequest): Promise<StepResult> => {
  const accepted: AcceptedMessage[] = [];
  const acceptLatencies: number[] = [];
  const statuses: Record<string, number> = {};
  const serverTimings: Record<string, number[]> = {};
  let failed = 0;
  const totalMs = req.warmupMs + req.durationMs;
  const measureFrom = performance.now() + req.warmupMs;
  const measuredIds = new Set<string>();
  const readLatencies: number[] = [];
  let readHits = 0;
  let readMisses = 0;

  const writes = openLoop(req.rate, totalMs, async (i, due) => {
    const thread = threads[i % threads.length] as BenchThread;
    const clientMessageId = randomUUID();
    const id = messageIdFor(thread.id, thread.userId, clientMessageId);
    const measured = due >= measureFrom;
    dueById.set(id, epoch(due));
    const body = JSON.stringify({
      message: `bench message ${i} ${"x".repeat(120)}`,
      client_message_id: clientMessageId,
    });
    try {
      const res = await request(
        new URL(`/api/threads/${thread.id}/messages`, setup.httpUrl),
        "POST",
        thread.token,
        body,
      );
      const end = performance.now();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status === 201) {
        accepted.push({ id, dueAt: epoch(due), measured });
        answeredById.set(id, epoch(end));
        if (measured) {
          acceptLatencies.push(end - due);
          measuredIds.add(id);
          for (const part of String(res.headers["server-timing"] ?? "").split(", ")) {
            const [name, dur] = part.split(";dur=");
            if (name && dur) (serverTimings[name] ??= []).push(Number(dur));
          }
        }
      } else {
        failed++;
      }
    } catch {
      failed++;
      statuses.error = (statuses.error ?? 0) + 1;
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
    statuses,
    acceptLatencies,
    measuredSeconds: req.durationMs / 1000,
    deliveryLatencies,
    deliveryAfterAnswer,
    readLatencies,
    readHits,
    readMisses,
    serverTimings,
  };
};

process.on("message", async (message: SetupRequest | StepRequest | { type: "close" }) => {
  if (message.type === "setup") {
    await prepare(message);
    process.send?.({ type: "ready", threads: threads.map((t) => t.id) });
  } else if (message.type === "step") {
    process.send?.(await runStep(message));
  } else {
    for (const ws of sockets) ws.close();
    agent.destroy();
    process.exit(0);
  }
});
