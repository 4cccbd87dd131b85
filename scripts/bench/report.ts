/** The benchmark's readable report: targets with pass/fail, tables, and SVG charts. */
import type { BundleReport } from "./bundles.ts";
import type { FailoverReport, ModeReport, StepReport } from "./main.ts";
import type { Summary } from "./stats.ts";
import type { StreamingReport, StreamKeyBytes } from "./streaming.ts";

export interface BenchResult {
  readonly date: string;
  readonly quick: boolean | undefined;
  readonly machine: Record<string, unknown>;
  readonly plan: Record<string, unknown> & { compareRate: number; slowdownMs: number };
  /** The ladders with every tier direct (the `local` profile). */
  readonly modes: { readonly queued: ModeReport; readonly sync: ModeReport };
  /** The ladders under the `aws` latency profile (absent when it did not run). */
  readonly aws?: { readonly queued: ModeReport; readonly sync: ModeReport };
  readonly failover?: readonly FailoverReport[];
  readonly bundles: readonly BundleReport[];
  /** The streaming scenario (absent when it did not run). */
  readonly streaming?: StreamingReport;
}

export interface Target {
  readonly name: string;
  readonly value: string;
  readonly pass: boolean;
}

const TARGET_RATE = 1000;
/** The accept p99 a mode must hold at a rate to count as holding it (main.ts CAPACITY_P99_MS). */
const CAPACITY_P99_MS = 50;
const CAPACITY_RATIO = 3;
const API_CPU_TARGET_MS = 0.4;
const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : "–");

/** Did the accept ladder run (it does not in `--streaming` alone without earlier results)? */
const ladderRan = (r: BenchResult): boolean =>
  r.modes.queued.steps.length > 0 || r.modes.sync.steps.length > 0;

export const evaluateTargets = (r: BenchResult): Target[] => [
  ...(ladderRan(r) ? ladderTargets(r) : []),
  ...(r.failover !== undefined ? failoverTargets(r.failover) : []),
  ...(r.streaming !== undefined ? streamingTargets(r.streaming) : []),
];

const ladderTargets = (r: BenchResult): Target[] => {
  const { queued, sync } = r.modes;
  const at = queued.steps.find((s) => s.rate === TARGET_RATE);
  const [qBase, qSlow] = queued.slowed;
  const [sBase, sSlow] = sync.slowed;
  const targets: Target[] = [];
  const add = (name: string, value: string, pass: boolean) => targets.push({ name, value, pass });
  if (at !== undefined) {
    add("persist lag p99 ≤ 250 ms at 1,000 msg/s", `${fmt(at.persistLag.p99)} ms`, at.persistLag.p99 <= 250);
    add(
      "≤ 0.05 PostgreSQL round trips per message (at 1,000 msg/s)",
      fmt(at.postgresRoundTripsPerMessage, 3),
      at.postgresRoundTripsPerMessage <= 0.05,
    );
    add(
      "≤ 0.05 PostgreSQL statements per message from the API process (accepts and reads, at 1,000 msg/s)",
      fmt(at.apiPostgresQueriesPerMessage, 3),
      at.apiPostgresQueriesPerMessage <= 0.05,
    );
    add(
      "≥ 1,000 rows per ClickHouse insert (at 1,000 msg/s)",
      fmt(at.rowsPerClickHouseInsert, 0),
      at.rowsPerClickHouseInsert >= 1000,
    );
    add(
      `API process CPU ≤ ${API_CPU_TARGET_MS} ms per accepted message (three-tier, 1,000 msg/s)`,
      `${fmt(at.apiCpuPerAcceptedMs, 3)} ms`,
      at.apiCpuPerAcceptedMs <= API_CPU_TARGET_MS,
    );
  }
  if (queued.steps.length > 0 && sync.steps.length > 0)
    add(
      `capacity (highest offered rate held with accept p99 ≤ ${CAPACITY_P99_MS} ms): three-tier ≥ ${CAPACITY_RATIO}× synchronous`,
      `${queued.capacity} vs ${sync.capacity} msg/s (${fmt(queued.capacity / Math.max(1, sync.capacity))}×)`,
      queued.capacity >= CAPACITY_RATIO * sync.capacity && queued.capacity > 0,
    );
  const past = queued.steps.filter((s) => s.rate > queued.capacity).at(-1);
  if (past !== undefined && queued.capacity > 0)
    add(
      `past the knee (${past.rate} msg/s offered): three-tier accepts ≥ 80% of its capacity, sheds the excess with 503 in p99 ≤ 100 ms, keeps accepted p99 ≤ 250 ms, ≤ 0.05 API PostgreSQL statements / msg`,
      `${past.achievedPerSecond}/s accepted (capacity ${queued.capacity}), ${past.shed} shed (p99 ${fmt(past.shedLatency.p99)} ms), ` +
        `${past.failed} failed, accepted p99 ${fmt(past.accept.p99)} ms, ${fmt(past.apiPostgresQueriesPerMessage, 3)} statements / msg`,
      past.achievedPerSecond >= 0.8 * queued.capacity &&
        (past.shed === 0 || past.shedLatency.p99 <= 100) &&
        past.accept.p99 <= 250 &&
        past.apiPostgresQueriesPerMessage <= 0.05,
    );
  if (qBase && qSlow && sBase && sSlow) {
    const qChange = (qSlow.accept.p99 - qBase.accept.p99) / qBase.accept.p99;
    add(
      `PostgreSQL +${r.plan.slowdownMs} ms: three-tier accept p99 changes ≤ 20%`,
      `${fmt(qBase.accept.p99)} → ${fmt(qSlow.accept.p99)} ms (${qChange >= 0 ? "+" : ""}${fmt(qChange * 100)}%)`,
      Math.abs(qChange) <= 0.2,
    );
    add(
      `PostgreSQL +${r.plan.slowdownMs} ms: synchronous accept p99 rises ≥ ${r.plan.slowdownMs} ms`,
      `${fmt(sBase.accept.p99)} → ${fmt(sSlow.accept.p99)} ms`,
      sSlow.accept.p99 - sBase.accept.p99 >= r.plan.slowdownMs,
    );
  }
  const biggest = [...r.bundles].sort((a, b) => b.bytes - a.bytes)[0];
  const slowest = [...r.bundles].sort((a, b) => b.initMs - a.initMs)[0];
  if (biggest && slowest) {
    add(
      "each Lambda bundle ≤ 1 MB minified",
      `largest ${biggest.id} ${fmt(biggest.bytes / 1e6, 2)} MB`,
      biggest.bytes <= 1_000_000,
    );
    add(
      "module initialisation ≤ 150 ms",
      `slowest ${slowest.id} ${fmt(slowest.initMs)} ms`,
      slowest.initMs <= 150,
    );
  }
  const ledgers = [queued.ledger, sync.ledger];
  add(
    "ledger: every accepted message in PostgreSQL and ClickHouse exactly once",
    ledgers.map((l) => `${l.inPostgres}/${l.accepted} PG, ${l.inClickHouse}/${l.accepted} CH`).join("; "),
    ledgers.every((l) => l.inPostgres === l.accepted && l.inClickHouse === l.accepted),
  );
  return targets;
};

const failoverTargets = (runs: readonly FailoverReport[]): Target[] => {
  const targets: Target[] = [];
  const pgQueued = runs.find((f) => f.tier === "postgres" && f.mode === "queued");
  if (pgQueued !== undefined)
    targets.push({
      name: `PostgreSQL unreachable ${pgQueued.outageMs / 1000} s at ${pgQueued.rate} msg/s (${pgQueued.profile} profile): three-tier, 0 failed accepts`,
      value: `${pgQueued.firstTryFailed} of ${pgQueued.sent} first tries failed, ${pgQueued.failed} never accepted; accept p99 ${fmt(pgQueued.accept.p99)} ms`,
      pass: pgQueued.firstTryFailed === 0 && pgQueued.failed === 0,
    });
  targets.push({
    name: "failovers: every accepted message in PostgreSQL and ClickHouse exactly once",
    value: runs
      .map(
        (f) =>
          `${f.tier}/${f.mode} ${f.ledger.inPostgres}/${f.ledger.accepted} PG, ${f.ledger.inClickHouse} CH`,
      )
      .join("; "),
    pass: runs.every(
      (f) => f.ledger.inPostgres === f.ledger.accepted && f.ledger.inClickHouse === f.ledger.accepted,
    ),
  });
  return targets;
};

const DELIVERY_TARGET_MS = 50;
const kb = (bytes: number): string => `${fmt(bytes / 1024)} KB`;

const streamingTargets = (s: StreamingReport): Target[] => {
  const d = s.deltas;
  const shape = `${s.plan.streams} streams × ${s.plan.perStreamRate} deltas/s`;
  const probe = s.redis.probe;
  const l = s.ledger;
  return [
    {
      name: `streaming: delta → subscriber p99 ≤ ${DELIVERY_TARGET_MS} ms (${shape})`,
      value: `${fmt(d.delivery.p99)} ms (p50 ${fmt(d.delivery.p50)}, max ${fmt(d.delivery.max)}; append 202 p99 ${fmt(d.append.p99)} ms)`,
      pass: d.delivery.count > 0 && d.delivery.p99 <= DELIVERY_TARGET_MS,
    },
    {
      name: "streaming: every delta received exactly once, in index order, by its subscriber",
      value:
        `${d.received}/${d.accepted} received (${d.scheduled} scheduled, ${d.failed} appends failed), ` +
        `${d.missing} missing, ${d.duplicates} duplicates, ${d.outOfOrder} out of order`,
      pass:
        d.accepted === d.scheduled &&
        d.failed === 0 &&
        d.received === d.accepted &&
        d.missing + d.duplicates + d.outOfOrder + d.unexpected === 0,
    },
    {
      name: "streaming: 0 PostgreSQL writes per delta (only opens and finals)",
      value:
        `${s.postgres.deltaPhase.rows} rows written during ${d.accepted} deltas (${fmt(s.postgres.writesPerDelta, 3)}/delta); ` +
        `${fmt(s.postgres.messagesRowsPerStream, 2)} message rows written per stream (open + final)`,
      pass: s.postgres.deltaPhase.rows === 0 && s.postgres.messagesRowsPerStream <= 2,
    },
    {
      // Bounded: a stream is refused at its limit, so no open stream outgrows the full one measured.
      name: `streaming: Redis memory per open stream bounded (STREAM_MAX_BYTES ${s.config.maxBytes}, STREAM_MAX_DELTAS ${s.config.maxDeltas}, TTL ${s.config.ttlSeconds} s) and reported`,
      value:
        `${kb(s.redis.perOpenStreamBytes)} per open stream (used_memory), keys ${kb(s.redis.keysPerOpenStream.total)} ` +
        `for ${kb(s.redis.contentBytesPerStream)} of content; at the limit (${kb(probe.bytes)}) ${kb(probe.keys.total)} ` +
        `= ${fmt(probe.keys.total / s.config.maxBytes, 2)}× STREAM_MAX_BYTES, the next delta refused with ${probe.refusedWith ?? "nothing"}`,
      pass:
        (probe.refusedWith ?? "").startsWith("413") &&
        probe.bytes <= s.config.maxBytes &&
        s.redis.keysPerOpenStream.total > 0,
    },
    {
      name: "streaming ledger: every completed message in PostgreSQL and ClickHouse exactly once, with the full content",
      value:
        `${l.inPostgres}/${l.completed} PG, ${l.inClickHouse}/${l.completed} CH ` +
        `(${s.open.opened} opened, ${s.complete.failed} completes failed; ${l.postgresMismatches + l.clickHouseMismatches} content mismatches, ${l.clickHouseDuplicates} duplicates)`,
      pass:
        l.completed === s.open.opened &&
        s.open.failed === 0 &&
        s.complete.failed === 0 &&
        s.complete.answerMismatches === 0 &&
        l.inPostgres === l.completed &&
        l.inClickHouse === l.completed,
    },
  ];
};

// ------------------------------------------------------------------ charts

const COLORS = { queued: "#1f77b4", sync: "#d62728" };

/** A small log-scale line chart of accept latency percentiles against the offered rate. */
export const latencyChart = (modes: readonly ModeReport[], title = "every tier direct"): string => {
  const targetMs = CAPACITY_P99_MS;
  const width = 720;
  const height = 400;
  const m = { left: 70, right: 170, top: 30, bottom: 50 };
  const series = modes.flatMap((mode) =>
    (["p50", "p99"] as const).map((p) => ({
      label: `${mode.mode === "queued" ? "three-tier" : "synchronous"} ${p}`,
      color: COLORS[mode.mode],
      dashed: p === "p50",
      points: mode.steps.map((s) => [s.rate, Math.max(0.1, s.accept[p])] as const),
    })),
  );
  const rates = series.flatMap((s) => s.points.map((p) => p[0]));
  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  const xMax = Math.max(...rates) * 1.05;
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...values, targetMs * 2)));
  const x = (v: number) => m.left + (v / xMax) * (width - m.left - m.right);
  const y = (v: number) =>
    height -
    m.bottom -
    ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) *
      (height - m.top - m.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    "<title>Accept latency p50 and p99 by offered rate, three-tier and synchronous</title>",
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${m.left}" y="18" font-size="14">Accept latency by offered rate, ${title} (log scale)</text>`,
  ];
  for (let v = yMin; v <= yMax; v *= 10) {
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end">${v} ms</text>`);
  }
  parts.push(
    `<line x1="${m.left}" x2="${width - m.right}" y1="${y(targetMs)}" y2="${y(targetMs)}" stroke="#2ca02c" stroke-dasharray="2 3"/>`,
    `<text x="${width - m.right + 4}" y="${y(targetMs) + 4}" fill="#2ca02c">${targetMs} ms: holds the rate</text>`,
  );
  for (const rate of [...new Set(rates)].sort((a, b) => a - b)) {
    parts.push(`<text x="${x(rate)}" y="${height - m.bottom + 18}" text-anchor="middle">${rate}</text>`);
  }
  parts.push(
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" text-anchor="middle">messages per second</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points
      .map(([r, v], j) => `${j === 0 ? "M" : "L"}${x(r).toFixed(1)},${y(v).toFixed(1)}`)
      .join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    for (const [r, v] of s.points) parts.push(`<circle cx="${x(r)}" cy="${y(v)}" r="3" fill="${s.color}"/>`);
    const ly = m.top + 20 + i * 18;
    parts.push(
      `<line x1="${width - m.right + 20}" x2="${width - m.right + 45}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${width - m.right + 50}" y="${ly + 4}">${s.label}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
};

/** Delta → subscriber p50/p99 and append p99 per second of the streaming phase (log scale). */
export const streamingChart = (s: StreamingReport): string => {
  const width = 720;
  const height = 360;
  const m = { left: 70, right: 190, top: 30, bottom: 50 };
  const series = [
    { label: "delta → subscriber p50", color: "#1f77b4", dashed: true, pick: (t: Timeline) => t.deliveryP50 },
    {
      label: "delta → subscriber p99",
      color: "#1f77b4",
      dashed: false,
      pick: (t: Timeline) => t.deliveryP99,
    },
    { label: "append (due → 202) p99", color: "#ff7f0e", dashed: false, pick: (t: Timeline) => t.appendP99 },
  ].map((x) => ({
    ...x,
    points: s.timeline
      .filter((t) => Number.isFinite(x.pick(t)))
      .map((t) => [t.second + 1, Math.max(0.1, x.pick(t))] as const),
  }));
  const values = series.flatMap((x) => x.points.map((p) => p[1]));
  const seconds = Math.max(1, s.timeline.length);
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...values, DELIVERY_TARGET_MS)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...values, DELIVERY_TARGET_MS * 2)));
  const x = (v: number) => m.left + (v / seconds) * (width - m.left - m.right);
  const y = (v: number) =>
    height -
    m.bottom -
    ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) *
      (height - m.top - m.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    "<title>Streaming: delta to subscriber latency and append latency per second</title>",
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${m.left}" y="18" font-size="14">Streaming, ${s.plan.streams} × ${s.plan.perStreamRate} deltas/s: latency per second (log scale)</text>`,
  ];
  for (let v = yMin; v <= yMax; v *= 10) {
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end">${v} ms</text>`);
  }
  const target = y(DELIVERY_TARGET_MS);
  parts.push(
    `<line x1="${m.left}" x2="${width - m.right}" y1="${target}" y2="${target}" stroke="#2ca02c" stroke-dasharray="2 3"/>`,
    `<text x="${width - m.right + 4}" y="${target + 4}" fill="#2ca02c">${DELIVERY_TARGET_MS} ms target</text>`,
  );
  const step = Math.max(1, Math.round(seconds / 10));
  for (let sec = step; sec <= seconds; sec += step) {
    parts.push(`<text x="${x(sec)}" y="${height - m.bottom + 18}" text-anchor="middle">${sec}</text>`);
  }
  parts.push(
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" text-anchor="middle">second of the delta phase</text>`,
  );
  series.forEach((line, i) => {
    const d = line.points
      .map(([sec, v], j) => `${j === 0 ? "M" : "L"}${x(sec).toFixed(1)},${y(v).toFixed(1)}`)
      .join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${line.color}" stroke-width="2"${line.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    const ly = m.top + 30 + i * 18;
    parts.push(
      `<line x1="${width - m.right + 10}" x2="${width - m.right + 35}" y1="${ly}" y2="${ly}" stroke="${line.color}" stroke-width="2"${line.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${width - m.right + 40}" y="${ly + 4}">${line.label}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
};

type Timeline = StreamingReport["timeline"][number];

// ------------------------------------------------------------------ markdown

const row = (cells: readonly (string | number)[]): string => `| ${cells.join(" | ")} |`;

const stepTable = (steps: readonly StepReport[]): string[] => [
  row([
    "offered msg/s",
    "achieved",
    "failed",
    "shed (503, p99 ms)",
    "accept p50 / p99 / max (ms)",
    "persist lag p50 / p99",
    "analytics lag p50 / p99",
    "WS delivery p50 / p99",
    "reads p50 / p99, hits",
    "PG round trips / msg",
    "API PG statements / msg",
    "rows / CH insert",
  ]),
  row(Array.from({ length: 12 }, () => "---")),
  ...steps.map((s) =>
    row([
      `${s.rate}${s.slowedPostgresMs ? ` (PG +${s.slowedPostgresMs} ms)` : ""}`,
      s.achievedPerSecond,
      s.failed,
      s.shed === 0 ? "0" : `${s.shed} (${fmt(s.shedLatency.p99)})`,
      `${fmt(s.accept.p50)} / ${fmt(s.accept.p99)} / ${fmt(s.accept.max)}`,
      `${fmt(s.persistLag.p50, 0)} / ${fmt(s.persistLag.p99, 0)}`,
      `${fmt(s.analyticsLag.p50, 0)} / ${fmt(s.analyticsLag.p99, 0)}`,
      `${fmt(s.delivery.p50)} / ${fmt(s.delivery.p99)}`,
      `${fmt(s.reads.p50)} / ${fmt(s.reads.p99)}, ${fmt(s.readHitRate * 100, 0)}%`,
      fmt(s.postgresRoundTripsPerMessage, 3),
      fmt(s.apiPostgresQueriesPerMessage, 3),
      fmt(s.rowsPerClickHouseInsert, 0),
    ]),
  ),
];

const timingTable = (steps: readonly StepReport[]): string[] => {
  const names = [...new Set(steps.flatMap((s) => Object.keys(s.serverTiming)))];
  return [
    row(["offered msg/s", ...names.map((n) => `${n} p50 / p99`)]),
    row(["---", ...names.map(() => "---")]),
    ...steps.map((s) =>
      row([
        `${s.rate}${s.slowedPostgresMs ? ` (PG +${s.slowedPostgresMs} ms)` : ""}`,
        ...names.map((n) => {
          const t = s.serverTiming[n];
          return t ? `${fmt(t.p50, 2)} / ${fmt(t.p99, 2)}` : "–";
        }),
      ]),
    ),
  ];
};

const costTable = (steps: readonly StepReport[]): string[] => [
  row([
    "offered msg/s",
    "CPU/msg: API",
    "API per accepted",
    "SQS endpoint",
    "consumers",
    "load generator",
    "latency proxies",
    "event-loop delay p99: API / SQS / consumers / generator",
    "send lateness p99",
  ]),
  row(Array.from({ length: 9 }, () => "---")),
  ...steps.map((s) =>
    row([
      `${s.rate}${s.slowedPostgresMs ? ` (PG +${s.slowedPostgresMs} ms)` : ""}`,
      `${fmt(s.cpuPerMessageMs.api ?? Number.NaN, 2)} ms`,
      `${fmt(s.apiCpuPerAcceptedMs ?? Number.NaN, 3)} ms`,
      `${fmt(s.cpuPerMessageMs.sqs ?? Number.NaN, 2)} ms`,
      `${fmt(s.cpuPerMessageMs.consumers ?? Number.NaN, 2)} ms`,
      `${fmt(s.cpuPerMessageMs.loadGenerator ?? Number.NaN, 2)} ms`,
      s.cpuPerMessageMs.proxies === undefined ? "–" : `${fmt(s.cpuPerMessageMs.proxies, 2)} ms`,
      ["api", "sqs", "consumers", "loadGenerator"]
        .map((k) => fmt(s.loopDelayP99Ms[k] ?? Number.NaN))
        .join(" / "),
      `${fmt(s.sendLateness.p99)} ms`,
    ]),
  ),
];

const summaryRow = (name: string, x: Summary): string =>
  row([name, x.count, fmt(x.p50), fmt(x.p90), fmt(x.p99), fmt(x.max)]);

const keyRow = (name: string, k: StreamKeyBytes): string =>
  row([name, k.state, k.content, k.openSet, k.lookup, `**${k.total}**`]);

const streamingSection = (s: StreamingReport): string[] => {
  const d = s.deltas;
  const pgDelta = s.postgres.deltaPhase;
  const pgAll = s.postgres.scenario;
  const mem = s.redis.usedMemory;
  const cost = s.cost;
  return [
    "## Streaming",
    "",
    `Run ${s.date}${s.quick ? " (short or custom variant, not for the record)" : ""}: ${s.plan.streams} replies streaming at once, ` +
      `${s.plan.perStreamRate} deltas/s each (${s.plan.offeredDeltasPerSecond} deltas/s), one WebSocket ` +
      `subscriber each, for ${s.plan.durationMs / 1000} s; then each completes with \`usage\`.`,
    "",
    "![streaming latency per second](streaming-latency.svg)",
    "",
    row(["latency (ms)", "samples", "p50", "p90", "p99", "max"]),
    row(["---", "---", "---", "---", "---", "---"]),
    summaryRow("delta → subscriber (append sent → frame)", d.delivery),
    summaryRow("… deltas accepted at their first send (no 503 + Retry-After)", d.deliveryFirstTry),
    summaryRow("append (due → 202)", d.append),
    summaryRow("due → frame at the subscriber", d.dueToFrame),
    summaryRow("send delay (due → sent: timer + previous append of the stream)", d.sendDelay),
    summaryRow("open (→ 201)", s.open.latency),
    summaryRow("complete (→ 200)", s.complete.latency),
    "",
    `Deltas: ${d.scheduled} scheduled over ${s.plan.durationMs / 1000} s, ${d.sent} sent, ${d.accepted} accepted ` +
      `in ${fmt(d.phaseSeconds)} s (${d.achievedPerSecond}/s), ` +
      `${d.failed} failed, ${d.skipped} not sent (stream stopped, or past the drain deadline), ${d.retries} retries, ` +
      `${d.duplicateAnswers} answered as duplicates; statuses ${JSON.stringify(d.statuses)}. Subscribers: ` +
      `${d.received} received, ${d.missing} missing (in ${d.streamsMissing} streams, at most ${d.mostMissingInAStream} in one; ` +
      `missing per second of the phase: ${s.timeline.map((t) => t.missing).join(" ")}), ` +
      `${d.duplicates} duplicates, ${d.outOfOrder} out of order, ` +
      `${Object.values(d.socketsClosed).reduce((a, n) => a + n, 0)} connections closed ${JSON.stringify(d.socketsClosed)}, ` +
      `${d.unexpected} unexpected; ${s.open.createdFrames}/${s.open.opened} \`message.created\`, ` +
      `${s.complete.completedFrames}/${s.complete.completed} \`message.completed\` ` +
      `(${s.complete.completedFrameMismatches} with other content).`,
    "",
    "PostgreSQL (`pg_stat_user_tables` and `pg_stat_database` of the stack's database; statements counted in each process):",
    "",
    row([
      "window",
      "rows written (all tables)",
      "messages inserted / updated / deleted",
      "transactions",
      "API statements",
      "consumer statements",
    ]),
    row(["---", "---", "---", "---", "---", "---"]),
    row([
      `deltas only (${d.accepted} deltas)`,
      pgDelta.rows,
      `${pgDelta.messagesInserted} / ${pgDelta.messagesUpdated} / ${pgDelta.messagesDeleted}`,
      pgDelta.transactions,
      pgDelta.apiStatements,
      pgDelta.consumerStatements,
    ]),
    ...(Object.keys(pgDelta.byTable).length > 0
      ? [row([`deltas only, by table: ${JSON.stringify(pgDelta.byTable)}`, "", "", "", "", ""])]
      : []),
    row([
      `opens to finals (${s.open.opened} streams)`,
      pgAll.rows,
      `${pgAll.messagesInserted} / ${pgAll.messagesUpdated} / ${pgAll.messagesDeleted}`,
      pgAll.transactions,
      "–",
      "–",
    ]),
    "",
    "Redis memory (`MEMORY USAGE … SAMPLES 0`, bytes) of a stream's keys:",
    "",
    row(["stream", "state hash (sm)", "content (sc)", "open set", "lookup {m:id}", "total"]),
    row(["---", "---", "---", "---", "---", "---"]),
    keyRow(`one open stream (${kb(s.redis.contentBytesPerStream)} of content)`, s.redis.oneOpenStream),
    keyRow("mean open stream", s.redis.keysPerOpenStream),
    keyRow(`mean ended stream (kept for the TTL, ${s.config.ttlSeconds} s)`, s.redis.keysPerEndedStream),
    keyRow(
      `a full stream (${s.redis.probe.appended} deltas, ${kb(s.redis.probe.bytes)})`,
      s.redis.probe.keys,
    ),
    "",
    `INFO used_memory: ${kb(mem.before)} before the opens, ${kb(mem.opened)} with every stream open, ` +
      `${kb(mem.streaming)} with their content, ${kb(mem.completed)} after the completes: ` +
      `**${kb(s.redis.perOpenStreamBytes)} per open stream**. Bounds: STREAM_MAX_BYTES ${s.config.maxBytes} B and ` +
      `STREAM_MAX_DELTAS ${s.config.maxDeltas} per stream (a full stream's next delta: ${s.redis.probe.refusedWith ?? "not refused"}), ` +
      `STREAM_MAX_DELTA_BYTES ${s.config.maxDeltaBytes}; a stream idle ${s.config.idleTimeoutSeconds} s is closed; ` +
      `keys expire ${s.config.ttlSeconds} s after the last write.`,
    "",
    `Cost during the delta phase, CPU per delta (ms): API ${fmt(cost.cpuPerDeltaMs.api ?? Number.NaN, 3)}, ` +
      `SQS endpoint ${fmt(cost.cpuPerDeltaMs.sqs ?? Number.NaN, 3)}, consumers ${fmt(cost.cpuPerDeltaMs.consumers ?? Number.NaN, 3)}, ` +
      `load generator ${fmt(cost.cpuPerDeltaMs.loadGenerator ?? Number.NaN, 3)}, Redis ${fmt(cost.cpuPerDeltaMs.redis ?? Number.NaN, 3)}; ` +
      `machine ${fmt(cost.machineBusyPercent, 0)}% busy (both cores); event-loop delay p99 (ms): API / SQS / consumers / generator ` +
      `${["api", "sqs", "consumers", "loadGenerator"].map((k) => fmt(cost.loopDelayP99Ms[k] ?? Number.NaN)).join(" / ")}; ` +
      `${fmt(cost.redisScriptCallsPerDelta, 2)} Redis script calls per delta, ${fmt(cost.redisUsecPerScriptCall)} µs each in Redis.`,
    "",
    `Ledger: ${s.ledger.inPostgres}/${s.ledger.completed} in PostgreSQL (state complete, content = the deltas joined; ` +
      `${s.ledger.postgresMismatches} mismatches) within ${fmt(s.ledger.postgresSeconds)} s of the completes; ` +
      `${s.ledger.inClickHouse}/${s.ledger.completed} in ClickHouse exactly once with the full content ` +
      `(${s.ledger.clickHouseMismatches} mismatches, ${s.ledger.clickHouseDuplicates} duplicates, ` +
      `${s.ledger.clickHouseRawRows} rows before merges) within ${fmt(s.ledger.clickHouseSeconds)} s.`,
    "",
  ];
};

const ladderSections = (r: BenchResult): string[] => [
  "## Three-tier (queued), every tier direct",
  "",
  ...stepTable([...r.modes.queued.steps, ...r.modes.queued.slowed]),
  "",
  "Server-Timing of the accept path (ms):",
  "",
  ...timingTable([...r.modes.queued.steps, ...r.modes.queued.slowed]),
  "",
  "Where the CPU goes (per offered message, each process of the local stack) and queueing inside the processes:",
  "",
  ...costTable([...r.modes.queued.steps, ...r.modes.queued.slowed]),
  "",
  "## Synchronous baseline (ACCEPT_MODE=sync), every tier direct",
  "",
  ...stepTable([...r.modes.sync.steps, ...r.modes.sync.slowed]),
  "",
  "Server-Timing of the accept path (ms):",
  "",
  ...timingTable([...r.modes.sync.steps, ...r.modes.sync.slowed]),
  "",
  "Where the CPU goes:",
  "",
  ...costTable([...r.modes.sync.steps, ...r.modes.sync.slowed]),
  "",
];

const pair = (x: Summary | undefined): string => (x === undefined ? "–" : `${fmt(x.p50)} / ${fmt(x.p99)}`);

/** Both modes at each rate of a profile, side by side. */
const sideBySide = (q: ModeReport, y: ModeReport): string[] => {
  const rates = [...new Set([...q.steps, ...y.steps].map((s) => s.rate))].sort((a, b) => a - b);
  const at = (m: ModeReport, rate: number) => m.steps.find((s) => s.rate === rate);
  return [
    row([
      "offered msg/s",
      "three-tier accept p50 / p99",
      "synchronous accept p50 / p99",
      "achieved (3-tier / sync)",
      "persist lag p99 (3-tier / sync)",
      "WS delivery p50 / p99 (3-tier)",
      "WS delivery p50 / p99 (sync)",
      "reads p50 / p99 (3-tier)",
      "PG round trips / msg (3-tier / sync)",
    ]),
    row(Array.from({ length: 9 }, () => "---")),
    ...rates.map((rate) => {
      const a = at(q, rate);
      const b = at(y, rate);
      return row([
        rate,
        pair(a?.accept),
        pair(b?.accept),
        `${a?.achievedPerSecond ?? "–"} / ${b?.achievedPerSecond ?? "–"}`,
        `${fmt(a?.persistLag.p99 ?? Number.NaN, 0)} / ${fmt(b?.persistLag.p99 ?? Number.NaN, 0)}`,
        pair(a?.delivery),
        pair(b?.delivery),
        pair(a?.reads),
        `${fmt(a?.postgresRoundTripsPerMessage ?? Number.NaN, 3)} / ${fmt(b?.postgresRoundTripsPerMessage ?? Number.NaN, 3)}`,
      ]);
    }),
  ];
};

const profileSection = (
  name: string,
  p: { queued: ModeReport; sync: ModeReport },
  chart: string,
): string[] => [
  `## Both modes, ${name}`,
  "",
  `![accept latency, ${name}](${chart})`,
  "",
  `Capacity (accept p99 ≤ ${CAPACITY_P99_MS} ms, ≥ 95% of the offered rate accepted): three-tier ${p.queued.capacity} msg/s` +
    `${p.queued.collapsedAt !== null ? ` (collapsed at ${p.queued.collapsedAt})` : ""}, synchronous ${p.sync.capacity} msg/s` +
    `${p.sync.collapsedAt !== null ? ` (collapsed at ${p.sync.collapsedAt})` : ""}.`,
  "",
  ...sideBySide(p.queued, p.sync),
  "",
];

const failoverSection = (runs: readonly FailoverReport[]): string[] => [
  "## Failover",
  "",
  "A tier unreachable (connections refused, open ones dropped) in the middle of a steady load; clients retry a failed try with the same `client_message_id` after its `Retry-After`, for up to 60 s.",
  "",
  row([
    "tier down",
    "mode",
    "profile",
    "writes",
    "first try failed",
    "delayed (accepted on a retry)",
    "never accepted",
    "accept p50 / p99 / max (ms)",
    "accept p50 / p99 during the outage",
    "persist lag p50 / p99 during the outage (ms)",
    "API PG statements / msg",
    "ledger PG / CH",
  ]),
  row(Array.from({ length: 12 }, () => "---")),
  ...runs.map((f) =>
    row([
      `${f.tier}, ${f.outageMs / 1000} s at ${f.rate} msg/s`,
      f.mode === "queued" ? "three-tier" : "synchronous",
      f.profile,
      f.sent,
      f.firstTryFailed,
      f.delayed,
      f.failed,
      `${fmt(f.accept.p50)} / ${fmt(f.accept.p99)} / ${fmt(f.accept.max)}`,
      pair(f.acceptDuringOutage),
      `${fmt(f.persistLagDuringOutage.p50, 0)} / ${fmt(f.persistLagDuringOutage.p99, 0)}`,
      fmt(f.apiPostgresQueriesPerMessage, 3),
      `${f.ledger.inPostgres}/${f.ledger.accepted}, ${f.ledger.inClickHouse}/${f.ledger.accepted}`,
    ]),
  ),
  "",
  "First tries that failed, per second of each run (the outage is marked by the cut and restore):",
  "",
  ...runs.map((f) => `- ${f.tier} / ${f.mode}: ${f.timeline.map((t) => t.firstTryFailed).join(" ")}`),
  "",
];

export const renderReport = (
  r: BenchResult,
): { markdown: string; charts: Record<string, string>; targets: Target[] } => {
  const targets = evaluateTargets(r);
  const machine = r.machine;
  const lines = [
    "# Benchmark report",
    "",
    `Run ${r.date}${r.quick ? " (quick mode: fewer, shorter steps)" : ""} on ${machine.cpus} × ${machine.cpuModel}, ` +
      `${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}, ClickHouse ${machine.clickhouse}; ` +
      "all servers local.",
    "",
    "## Targets",
    "",
    row(["target", "measured", "result"]),
    row(["---", "---", "---"]),
    ...targets.map((t) => row([t.name, t.value, t.pass ? "pass" : "**FAIL**"])),
    "",
    ...(ladderRan(r)
      ? profileSection("every tier direct (local profile)", r.modes, "accept-latency.svg")
      : []),
    ...(r.aws !== undefined ? profileSection("aws latency profile", r.aws, "accept-latency-aws.svg") : []),
    ...(r.aws !== undefined
      ? [
          "Server-Timing of the three-tier accept under the aws profile (ms):",
          "",
          ...timingTable(r.aws.queued.steps),
          "",
          "Server-Timing of the synchronous accept under the aws profile (ms):",
          "",
          ...timingTable(r.aws.sync.steps),
          "",
          "Where the CPU goes under the aws profile (per offered message; the latency proxies are a process of their own):",
          "",
          ...costTable(r.aws.queued.steps),
          "",
        ]
      : []),
    ...(r.failover !== undefined ? failoverSection(r.failover) : []),
    ...(ladderRan(r) ? ladderSections(r) : ["The accept ladder did not run.", ""]),
    ...(r.streaming !== undefined ? streamingSection(r.streaming) : []),
    ...(r.bundles.length > 0
      ? [
          "## Lambda bundles",
          "",
          row(["function", "minified", "module init (median of 5)"]),
          row(["---", "---", "---"]),
          ...r.bundles.map((b) => row([b.id, `${(b.bytes / 1024).toFixed(0)} KB`, `${fmt(b.initMs)} ms`])),
          "",
        ]
      : []),
  ];
  return {
    markdown: lines.join("\n"),
    charts: {
      ...(ladderRan(r) ? { "accept-latency.svg": latencyChart([r.modes.queued, r.modes.sync]) } : {}),
      ...(r.aws !== undefined
        ? { "accept-latency-aws.svg": latencyChart([r.aws.queued, r.aws.sync], "aws latency profile") }
        : {}),
      ...(r.streaming !== undefined ? { "streaming-latency.svg": streamingChart(r.streaming) } : {}),
    },
    targets,
  };
};
