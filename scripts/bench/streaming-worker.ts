/**
 * The streaming scenario's load generator, in a process of its own: per stream a thread (created by
 * its user), that user's WebSocket subscriber, and an agent (a service principal) that opens the
 * reply, appends one delta every 1/rate seconds and completes it.
 *
 * Open model per stream: delta i of a stream is due at a fixed time whatever the answers do, and
 * its append latency is measured from that due time. A stream's deltas must reach the API in index
 * order (a later index first is a 409), so each agent sends over its own keep-alive connection, one
 * request at a time, as a real agent does: a slow answer delays the next send, and that wait is in
 * the next delta's latency. Delta → subscriber latency is measured from the moment the append was
 * sent to the moment its frame arrives at the thread's subscriber (same process, same clock).
 *
 * Driven over IPC by scripts/bench/streaming.ts, phase by phase, so the orchestrator can read
 * PostgreSQL and Redis between them: setup → open → stream → complete → close.
 */
import { randomUUID } from "node:crypto";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Client } from "undici";
import WebSocket from "ws";
import { signDevToken } from "../local-stack/tokens.ts";
import { openLoop } from "./open-loop.ts";
import { LOOP_RESOLUTION_MS, loopDelaySummary } from "./stats.ts";

export interface StreamingSetup {
  readonly type: "setup";
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly secret: string;
  /** One stream per thread, each thread with one subscriber. */
  readonly threads: number;
}

export interface OpenResult {
  readonly type: "opened";
  readonly streams: { readonly threadId: string; readonly messageId: string }[];
  readonly failed: number;
  /** POST (state streaming) → 201 (ms). */
  readonly openLatencies: number[];
  /** Subscribers that got the opened reply's `message.created` frame. */
  readonly createdFrames: number;
}

export interface StreamRequest {
  readonly type: "stream";
  /** Deltas per second per stream. */
  readonly perStreamRate: number;
  readonly durationMs: number;
}

export interface DeliveryCheck {
  /** Deltas answered 202 (each index once). */
  readonly accepted: number;
  /** Delta frames the subscribers received for their thread's reply (all of them). */
  readonly received: number;
  /** Accepted deltas whose frame never arrived. */
  readonly missing: number;
  /** Frames of an index the subscriber had already received. */
  readonly duplicates: number;
  /** Frames that arrived after a frame of a later index. */
  readonly outOfOrder: number;
  /** Frames of an index the agent was never told was appended. */
  readonly unexpected: number;
}

export interface StreamResult extends DeliveryCheck {
  readonly type: "streamed";
  /** Deltas scheduled (streams × rate × duration). */
  readonly scheduled: number;
  /** Appends that were sent at least once. */
  readonly sent: number;
  /** Appends that ended without a 202 (their stream stops there). */
  readonly failed: number;
  /** Deltas not sent: their stream had stopped, or the backlog outlasted the drain deadline. */
  readonly skipped: number;
  readonly retries: number;
  /** 202s that said the index was a duplicate (a retry of an append that had gone through). */
  readonly duplicateAnswers: number;
  readonly statuses: Record<string, number>;
  /** Due → 202 (ms). */
  readonly appendLatencies: number[];
  /** Append sent → frame at the subscriber (ms). */
  readonly deliveryLatencies: number[];
  /** The same for the deltas accepted at their first send (no 503 and Retry-After in between). */
  readonly firstTryDeliveryLatencies: number[];
  /** Due → frame at the subscriber (ms): what a reader sees of the agent's schedule. */
  readonly dueToFrameLatencies: number[];
  /** Due → sent (ms): the generator's timer lateness plus the wait for the stream's previous append. */
  readonly sendDelays: number[];
  /** Per second of the phase (by due time): delivery and append latency samples, frames missing. */
  readonly timeline: { readonly delivery: number[]; readonly append: number[]; missing: number }[];
  /** Streams whose subscriber missed any frame, and the most one missed. */
  readonly streamsMissing: number;
  readonly mostMissingInAStream: number;
  /** Subscriber connections that closed during the phase, by close code. */
  readonly socketsClosed: Record<string, number>;
  readonly measuredSeconds: number;
  /** From the first delta due to the last answer (longer than the schedule when a backlog built up). */
  readonly phaseSeconds: number;
  readonly loopDelay: { p50: number; p99: number; max: number };
  /** Load-generator CPU per scheduled delta (ms). */
  readonly cpuPerDeltaMs: number;
  /** UTF-8 bytes of the content of one stream (the first), and of all streams. */
  readonly contentBytes: { readonly first: number; readonly total: number };
}

export interface CompleteResult {
  readonly type: "completed";
  readonly completed: { readonly messageId: string; readonly threadId: string; readonly content: string }[];
  readonly failed: number;
  /** POST complete → 200 (ms). */
  readonly completeLatencies: number[];
  /** The 200's final message: state complete and content = the accepted deltas joined. */
  readonly answerMismatches: number;
  /** Subscribers that got `message.completed` with the same final content. */
  readonly completedFrames: number;
  readonly completedFrameMismatches: number;
}

export interface ProbeRequest {
  readonly type: "probe";
  readonly deltaBytes: number;
  /** Appends to try at most (the refusal is expected before). */
  readonly maxAppends: number;
}

export interface ProbeResult {
  readonly type: "probed";
  readonly threadId: string;
  readonly messageId: string;
  /** Appends answered 202, and their bytes. */
  readonly appended: number;
  readonly bytes: number;
  /** The status and error code of the first append refused (413 stream_too_large expected). */
  readonly refusedWith: string | null;
}

interface Stream {
  readonly n: number;
  readonly threadId: string;
  readonly userToken: string;
  readonly socket: WebSocket;
  /** The agent's own keep-alive connection. */
  readonly client: Client;
  messageId: string;
  /** Sequential sends: each append waits for the stream's previous one. */
  tail: Promise<void>;
  stopped: boolean;
  /** Per delta index: when it was due / first sent (performance.now()), and its text once accepted. */
  readonly dueAt: number[];
  readonly sentAt: number[];
  readonly accepted: (string | undefined)[];
  /** Indexes sent more than once (a 5xx, then a retry after Retry-After). */
  readonly retried: boolean[];
  // The subscriber's view.
  /** Per index: append sent → frame (ms). */
  readonly deliveredIn: number[];
  readonly seen: boolean[];
  highest: number;
  received: number;
  duplicates: number;
  outOfOrder: number;
  unexpected: number;
  /** Ids of the `message.created` frames (the opened reply's comes before its 201). */
  readonly created: Set<string>;
  completed: { content: string; state: string } | undefined;
}

const WORDS = (
  "the model writes its answer a few tokens at a time while the reader watches each piece arrive " +
  "in order and nothing of it touches the database until the reply is complete"
).split(" ");
/** A short, deterministic, token-sized piece of text (the content is checked against the ledger). */
const textOf = (stream: number, index: number): string =>
  ` ${WORDS[(stream * 7 + index) % WORDS.length] as string}`;

let setup: StreamingSetup;
let agentToken: string;
let streams: Stream[] = [];
let origin: string;
let phaseStart = 0;
/** Delivery samples, recorded by the subscribers as frames arrive during the stream phase. */
let deliveryLatencies: number[] = [];
let dueToFrameLatencies: number[] = [];
let timeline: { delivery: number[]; append: number[]; missing: number }[] = [];
let socketsClosed: Record<string, number> = {};

/** Retries of an append answered 5xx (or not answered), and the wait when no Retry-After says. */
const MAX_RETRIES = 5;
const RETRY_DELAY_MS = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const bucket = (due: number) => {
  const second = Math.max(0, Math.floor((due - phaseStart) / 1000));
  while (timeline.length <= second) timeline.push({ delivery: [], append: [], missing: 0 });
  return timeline[second] as { delivery: number[]; append: number[]; missing: number };
};

/**
 * One POST. A network error (a keep-alive connection the server just closed) is tried again, and so
 * is a 5xx after its Retry-After when `retryUnavailable` (for idempotent requests only).
 */
const post = async (
  client: Client,
  pathname: string,
  token: string,
  body: unknown,
  retryUnavailable = false,
): Promise<{ status: number; body: string }> => {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await client.request({
        path: pathname,
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await res.body.text();
      if (!retryUnavailable || res.statusCode < 500 || attempt >= MAX_RETRIES)
        return { status: res.statusCode, body: text };
      const retryAfter = Number(res.headers["retry-after"]);
      await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 1000);
    } catch (error) {
      if (attempt >= 2) throw error;
      await sleep(50);
    }
  }
};

const onFrame = (stream: Stream, data: WebSocket.RawData): void => {
  const arrived = performance.now();
  const frame = JSON.parse(data.toString()) as {
    type: string;
    message_id?: string;
    index?: number;
    message?: { id: string; content: string; state: string };
  };
  if (frame.type === "message.delta") {
    if (frame.message_id !== stream.messageId || frame.index === undefined) return;
    const index = frame.index;
    if (stream.seen[index]) {
      stream.duplicates++;
      return;
    }
    stream.seen[index] = true;
    stream.received++;
    if (index < stream.highest) stream.outOfOrder++;
    stream.highest = Math.max(stream.highest, index);
    const sent = stream.sentAt[index];
    const due = stream.dueAt[index];
    if (sent === undefined || due === undefined) {
      stream.unexpected++;
      return;
    }
    deliveryLatencies.push(arrived - sent);
    stream.deliveredIn[index] = arrived - sent;
    dueToFrameLatencies.push(arrived - due);
    bucket(due).delivery.push(arrived - sent);
  } else if (frame.type === "message.created" && frame.message !== undefined) {
    stream.created.add(frame.message.id);
  } else if (frame.type === "message.completed" && frame.message?.id === stream.messageId) {
    stream.completed = { content: frame.message.content, state: frame.message.state };
  }
};

const connect = (token: string): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${setup.wsUrl}?token=${encodeURIComponent(token)}`);
    ws.once("open", () => resolve(ws));
    // Also after the open: an error later must not end the process (the frames tell what arrived).
    ws.on("error", reject);
  });

const subscribe = (ws: WebSocket, threadId: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const onMessage = (data: WebSocket.RawData) => {
      const frame = JSON.parse(data.toString()) as { type: string; code?: string };
      if (frame.type === "subscribed") {
        ws.off("message", onMessage);
        resolve();
      } else if (frame.type === "error") {
        ws.off("message", onMessage);
        reject(new Error(`subscribe refused: ${frame.code}`));
      }
    };
    ws.on("message", onMessage);
    ws.send(JSON.stringify({ action: "subscribe", threadId }));
  });

/** Tries `work` again after a refusal (a 503 while the API warms up), as a client would. */
const retrying = async <T>(work: () => Promise<T>): Promise<T> => {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(1000);
    }
  }
};

const createThread = (client: Client, token: string): Promise<string> =>
  retrying(async () => {
    const res = await post(client, "/api/threads", token, {}, true);
    if (res.status !== 201) throw new Error(`thread creation failed: ${res.status} ${res.body}`);
    return (JSON.parse(res.body) as { id: string }).id;
  });

/** One stream's thread, subscriber and agent connection (one after another, like users arriving). */
const prepareStream = async (n: number): Promise<Stream> => {
  const userToken = await signDevToken({
    secret: setup.secret,
    sub: `bench-stream-${n}-${randomUUID().slice(0, 8)}`,
  });
  const client = new Client(origin, { pipelining: 1, keepAliveTimeout: 60_000 });
  const threadId = await createThread(client, userToken);
  const socket = await retrying(async () => {
    const ws = await connect(userToken);
    try {
      await subscribe(ws, threadId);
      return ws;
    } catch (error) {
      ws.close();
      throw error;
    }
  });
  const stream: Stream = {
    n,
    threadId,
    userToken,
    socket,
    client,
    messageId: "",
    tail: Promise.resolve(),
    stopped: false,
    dueAt: [],
    sentAt: [],
    accepted: [],
    retried: [],
    deliveredIn: [],
    seen: [],
    highest: -1,
    received: 0,
    duplicates: 0,
    outOfOrder: 0,
    unexpected: 0,
    created: new Set(),
    completed: undefined,
  };
  socket.on("message", (data) => onFrame(stream, data));
  socket.on("close", (code) => {
    socketsClosed[code] = (socketsClosed[code] ?? 0) + 1;
  });
  return stream;
};

const prepare = async (req: StreamingSetup): Promise<void> => {
  setup = req;
  origin = new URL(req.httpUrl).origin;
  agentToken = await signDevToken({ secret: req.secret, sub: "bench-agent", roles: ["service"] });
  streams = [];
  for (let n = 0; n < req.threads; n++) streams.push(await prepareStream(n));
};

const waitUntil = async (done: () => boolean, timeoutMs: number): Promise<void> => {
  const deadline = performance.now() + timeoutMs;
  while (!done() && performance.now() < deadline) await sleep(20);
};

const open = async (): Promise<OpenResult> => {
  const openLatencies: number[] = [];
  let failed = 0;
  await Promise.all(
    streams.map(async (s) => {
      const start = performance.now();
      const res = await post(
        s.client,
        `/api/threads/${s.threadId}/messages`,
        agentToken,
        // The key makes a retried open the same reply.
        { role: "assistant", message: "", state: "streaming", client_message_id: randomUUID() },
        true,
      );
      if (res.status !== 201) {
        failed++;
        s.stopped = true;
        console.error(`open failed: ${res.status} ${res.body}`);
        return;
      }
      openLatencies.push(performance.now() - start);
      s.messageId = (JSON.parse(res.body) as { id: string }).id;
    }),
  );
  const live = streams.filter((s) => !s.stopped);
  await waitUntil(() => live.every((s) => s.created.has(s.messageId)), 10_000);
  return {
    type: "opened",
    streams: live.map((s) => ({ threadId: s.threadId, messageId: s.messageId })),
    failed,
    openLatencies,
    createdFrames: live.filter((s) => s.created.has(s.messageId)).length,
  };
};

const stream = async (req: StreamRequest): Promise<StreamResult> => {
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const cpu0 = process.cpuUsage();
  deliveryLatencies = [];
  dueToFrameLatencies = [];
  timeline = [];
  socketsClosed = {};
  const live = streams.filter((s) => !s.stopped);
  const appendLatencies: number[] = [];
  const sendDelays: number[] = [];
  const statuses: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  let skipped = 0;
  let retries = 0;
  let duplicateAnswers = 0;

  const append = async (s: Stream, index: number, due: number): Promise<void> => {
    if (s.stopped || performance.now() > drainDeadline) {
      skipped++;
      return;
    }
    const text = textOf(s.n, index);
    const body = JSON.stringify({ index, text });
    sent++;
    for (let attempt = 0; ; attempt++) {
      const now = performance.now();
      if (attempt === 0) {
        s.dueAt[index] = due;
        s.sentAt[index] = now;
        sendDelays.push(now - due);
      }
      let status: number | "error";
      let answer = "";
      let retryAfterMs = RETRY_DELAY_MS;
      try {
        const res = await s.client.request({
          path: `/api/messages/${s.messageId}/deltas`,
          method: "POST",
          headers: { authorization: `Bearer ${agentToken}`, "content-type": "application/json" },
          body,
        });
        status = res.statusCode;
        answer = await res.body.text();
        const header = Number(res.headers["retry-after"]);
        if (Number.isFinite(header) && header > 0) retryAfterMs = header * 1000;
      } catch {
        status = "error";
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 202) {
        const end = performance.now();
        appendLatencies.push(end - due);
        bucket(due).append.push(end - due);
        s.accepted[index] = text;
        if ((JSON.parse(answer) as { duplicate?: boolean }).duplicate) duplicateAnswers++;
        return;
      }
      // A 5xx or a broken connection is retried with the same index after Retry-After, as an agent
      // should (a delta that went through is answered as a duplicate); any other refusal stops the
      // stream, as every later index would be out of order.
      if ((status === "error" || status >= 500) && attempt < MAX_RETRIES) {
        retries++;
        s.retried[index] = true;
        await sleep(retryAfterMs);
        continue;
      }
      failed++;
      s.stopped = true;
      if (failed <= 5) console.error(`append refused: ${status} ${answer}`);
      return;
    }
  };

  const rate = live.length * req.perStreamRate;
  phaseStart = performance.now();
  // A backlog is sent late (and measured so); past this, the rest is skipped, so the phase ends.
  const drainDeadline = phaseStart + req.durationMs + Math.max(60_000, 6 * req.durationMs);
  await openLoop(rate, req.durationMs, (i, due) => {
    const s = live[i % live.length] as Stream;
    const index = Math.floor(i / live.length);
    s.tail = s.tail.then(() => append(s, index, due));
    return s.tail;
  });
  const phaseSeconds = (performance.now() - phaseStart) / 1000;
  const acceptedCount = (s: Stream) => s.accepted.filter((t) => t !== undefined).length;
  // Frames leave before the 202; a last wait for any still on the way.
  await waitUntil(() => live.every((s) => s.received >= acceptedCount(s)), 5000);
  const cpu = process.cpuUsage(cpu0);
  const scheduled = Math.round((rate * req.durationMs) / 1000);
  let accepted = 0;
  let received = 0;
  let missing = 0;
  let streamsMissing = 0;
  let mostMissingInAStream = 0;
  for (const s of live) {
    accepted += acceptedCount(s);
    received += s.received;
    let missed = 0;
    s.accepted.forEach((t, i) => {
      if (t === undefined || s.seen[i]) return;
      missed++;
      bucket(s.dueAt[i] as number).missing++;
    });
    missing += missed;
    if (missed > 0) streamsMissing++;
    mostMissingInAStream = Math.max(mostMissingInAStream, missed);
  }
  const content = (s: Stream | undefined) => Buffer.byteLength((s?.accepted ?? []).join(""), "utf8");
  return {
    type: "streamed",
    scheduled,
    sent,
    failed,
    skipped,
    retries,
    duplicateAnswers,
    statuses,
    accepted,
    received,
    missing,
    streamsMissing,
    mostMissingInAStream,
    socketsClosed,
    duplicates: live.reduce((a, s) => a + s.duplicates, 0),
    outOfOrder: live.reduce((a, s) => a + s.outOfOrder, 0),
    unexpected: live.reduce((a, s) => a + s.unexpected, 0),
    appendLatencies,
    deliveryLatencies,
    firstTryDeliveryLatencies: live.flatMap((s) =>
      s.deliveredIn.filter((ms, i) => ms !== undefined && !s.retried[i]),
    ),
    dueToFrameLatencies,
    sendDelays,
    timeline,
    measuredSeconds: req.durationMs / 1000,
    phaseSeconds,
    loopDelay: loopDelaySummary(loop),
    cpuPerDeltaMs: (cpu.user + cpu.system) / 1000 / Math.max(1, scheduled),
    contentBytes: { first: content(live[0]), total: live.reduce((a, s) => a + content(s), 0) },
  };
};

const complete = async (): Promise<CompleteResult> => {
  const live = streams.filter((s) => s.messageId !== "");
  const completeLatencies: number[] = [];
  const completed: CompleteResult["completed"] = [];
  let failed = 0;
  let answerMismatches = 0;
  const expected = (s: Stream) => s.accepted.filter((t) => t !== undefined).join("");
  await Promise.all(
    live.map(async (s) => {
      const outputTokens = s.accepted.filter((t) => t !== undefined).length;
      const start = performance.now();
      const res = await post(
        s.client,
        `/api/messages/${s.messageId}/complete`,
        agentToken,
        { finish_reason: "stop", usage: { model: "bench", input_tokens: 1, output_tokens: outputTokens } },
        true,
      );
      if (res.status !== 200) {
        failed++;
        console.error(`complete failed: ${res.status} ${res.body}`);
        return;
      }
      completeLatencies.push(performance.now() - start);
      const final = JSON.parse(res.body) as { state: string; content: string };
      if (final.state !== "complete" || final.content !== expected(s)) answerMismatches++;
      completed.push({ messageId: s.messageId, threadId: s.threadId, content: expected(s) });
    }),
  );
  const done = new Set(completed.map((c) => c.messageId));
  const watched = live.filter((s) => done.has(s.messageId));
  await waitUntil(() => watched.every((s) => s.completed !== undefined), 10_000);
  const frames = watched.filter((s) => s.completed !== undefined);
  return {
    type: "completed",
    completed,
    failed,
    completeLatencies,
    answerMismatches,
    completedFrames: frames.length,
    completedFrameMismatches: frames.filter(
      (s) => s.completed?.state !== "complete" || s.completed.content !== expected(s),
    ).length,
  };
};

/** A stream of its own (no subscriber) filled until the API refuses it: the largest one Redis holds. */
const probe = async (req: ProbeRequest): Promise<ProbeResult> => {
  const client = new Client(origin, { pipelining: 1 });
  try {
    const userToken = await signDevToken({ secret: setup.secret, sub: `bench-probe-${randomUUID()}` });
    const threadId = await createThread(client, userToken);
    const opened = await post(client, `/api/threads/${threadId}/messages`, agentToken, {
      role: "assistant",
      message: "",
      state: "streaming",
    });
    if (opened.status !== 201) throw new Error(`probe open failed: ${opened.status} ${opened.body}`);
    const messageId = (JSON.parse(opened.body) as { id: string }).id;
    const text = "x".repeat(req.deltaBytes);
    let appended = 0;
    let refusedWith: string | null = null;
    for (let index = 0; index < req.maxAppends; index++) {
      const res = await post(client, `/api/messages/${messageId}/deltas`, agentToken, { index, text });
      if (res.status === 202) {
        appended++;
        continue;
      }
      const code = (JSON.parse(res.body) as { error?: { code?: string } }).error?.code ?? "";
      refusedWith = `${res.status} ${code}`;
      break;
    }
    return { type: "probed", threadId, messageId, appended, bytes: appended * req.deltaBytes, refusedWith };
  } finally {
    await client.close();
  }
};

// The benchmark died or was interrupted: no load keeps running.
process.once("disconnect", () => process.exit(1));

process.on(
  "message",
  async (
    message: StreamingSetup | StreamRequest | ProbeRequest | { type: "open" | "complete" | "close" },
  ) => {
    if (message.type === "setup") {
      await prepare(message);
      process.send?.({ type: "ready" });
    } else if (message.type === "open") {
      process.send?.(await open());
    } else if (message.type === "stream") {
      process.send?.(await stream(message));
    } else if (message.type === "complete") {
      process.send?.(await complete());
    } else if (message.type === "probe") {
      process.send?.(await probe(message));
    } else {
      for (const s of streams) s.socket.close();
      await Promise.all(streams.map((s) => s.client.close()));
      process.exit(0);
    }
  },
);
