/** The benchmark's readable report: targets with pass/fail, tables, and SVG charts. */
import type { BundleReport } from "./bundles.ts";
import type { ModeReport, StepReport } from "./main.ts";

export interface BenchResult {
  readonly date: string;
  readonly quick: boolean | undefined;
  readonly machine: Record<string, unknown>;
  readonly plan: Record<string, unknown> & { compareRate: number; slowdownMs: number };
  readonly modes: { readonly queued: ModeReport; readonly sync: ModeReport };
  readonly bundles: readonly BundleReport[];
}

export interface Target {
  readonly name: string;
  readonly value: string;
  readonly pass: boolean;
}

const TARGET_RATE = 1000;
const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : "–");

export const evaluateTargets = (r: BenchResult): Target[] => {
  const { queued, sync } = r.modes;
  const at = queued.steps.find((s) => s.rate === TARGET_RATE);
  const [qBase, qSlow] = queued.slowed;
  const [sBase, sSlow] = sync.slowed;
  const targets: Target[] = [];
  const add = (name: string, value: string, pass: boolean) => targets.push({ name, value, pass });
  if (at !== undefined) {
    add(
      "accept p99 ≤ 10 ms at 1,000 msg/s",
      `${fmt(at.accept.p99)} ms`,
      at.accept.p99 <= 10 && at.failed === 0,
    );
    add("persist lag p99 ≤ 250 ms at 1,000 msg/s", `${fmt(at.persistLag.p99)} ms`, at.persistLag.p99 <= 250);
    add("WebSocket delivery p99 ≤ 20 ms at 1,000 msg/s", `${fmt(at.delivery.p99)} ms`, at.delivery.p99 <= 20);
    add(
      "history reads p99 ≤ 5 ms with Redis hit rate ≥ 95% (at 1,000 msg/s)",
      `${fmt(at.reads.p99)} ms, ${fmt(at.readHitRate * 100)}% hits`,
      at.reads.p99 <= 5 && at.readHitRate >= 0.95,
    );
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
  }
  add(
    "highest rate at accept p99 ≤ 10 ms ≥ 2× the synchronous mode's",
    `${queued.maxRateWithin10ms} vs ${sync.maxRateWithin10ms} msg/s`,
    queued.maxRateWithin10ms >= 2 * sync.maxRateWithin10ms && queued.maxRateWithin10ms > 0,
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

// ------------------------------------------------------------------ charts

const COLORS = { queued: "#1f77b4", sync: "#d62728" };

/** A small log-scale line chart of accept latency percentiles against the offered rate. */
export const latencyChart = (modes: readonly ModeReport[]): string => {
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
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...values, 20)));
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
    `<text x="${m.left}" y="18" font-size="14">Accept latency by offered rate (log scale)</text>`,
  ];
  for (let v = yMin; v <= yMax; v *= 10) {
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 8}" y="${y(v) + 4}" text-anchor="end">${v} ms</text>`);
  }
  parts.push(
    `<line x1="${m.left}" x2="${width - m.right}" y1="${y(10)}" y2="${y(10)}" stroke="#2ca02c" stroke-dasharray="2 3"/>`,
    `<text x="${width - m.right + 4}" y="${y(10) + 4}" fill="#2ca02c">10 ms target</text>`,
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

// ------------------------------------------------------------------ markdown

const row = (cells: readonly (string | number)[]): string => `| ${cells.join(" | ")} |`;

const stepTable = (steps: readonly StepReport[]): string[] => [
  row([
    "offered msg/s",
    "achieved",
    "failed",
    "accept p50 / p99 / max (ms)",
    "persist lag p50 / p99",
    "analytics lag p50 / p99",
    "WS delivery p50 / p99",
    "reads p50 / p99, hits",
    "PG round trips / msg",
    "API PG statements / msg",
    "rows / CH insert",
  ]),
  row(Array.from({ length: 11 }, () => "---")),
  ...steps.map((s) =>
    row([
      `${s.rate}${s.slowedPostgresMs ? ` (PG +${s.slowedPostgresMs} ms)` : ""}`,
      s.achievedPerSecond,
      s.failed,
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
    "SQS endpoint",
    "consumers",
    "load generator",
    "event-loop delay p99: API / SQS / consumers / generator",
    "send lateness p99",
  ]),
  row(Array.from({ length: 7 }, () => "---")),
  ...steps.map((s) =>
    row([
      `${s.rate}${s.slowedPostgresMs ? ` (PG +${s.slowedPostgresMs} ms)` : ""}`,
      `${fmt(s.cpuPerMessageMs.api ?? Number.NaN, 2)} ms`,
      `${fmt(s.cpuPerMessageMs.sqs ?? Number.NaN, 2)} ms`,
      `${fmt(s.cpuPerMessageMs.consumers ?? Number.NaN, 2)} ms`,
      `${fmt(s.cpuPerMessageMs.loadGenerator ?? Number.NaN, 2)} ms`,
      ["api", "sqs", "consumers", "loadGenerator"]
        .map((k) => fmt(s.loopDelayP99Ms[k] ?? Number.NaN))
        .join(" / "),
      `${fmt(s.sendLateness.p99)} ms`,
    ]),
  ),
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
    "## Accept latency by rate",
    "",
    "![accept latency](accept-latency.svg)",
    "",
    "## Three-tier (queued)",
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
    "## Synchronous baseline (ACCEPT_MODE=sync)",
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
    "## Lambda bundles",
    "",
    row(["function", "minified", "module init (median of 5)"]),
    row(["---", "---", "---"]),
    ...r.bundles.map((b) => row([b.id, `${(b.bytes / 1024).toFixed(0)} KB`, `${fmt(b.initMs)} ms`])),
    "",
  ];
  return {
    markdown: lines.join("\n"),
    charts: { "accept-latency.svg": latencyChart([r.modes.queued, r.modes.sync]) },
    targets,
  };
};
