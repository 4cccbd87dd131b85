/** Percentiles and summaries of latency samples. */
export const percentile = (sorted: readonly number[], p: number): number => {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
};

export interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

const round = (x: number): number => Math.round(x * 100) / 100;

export const summarize = (values: readonly number[]): Summary => {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p90: round(percentile(sorted, 90)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? Number.NaN),
    mean: round(sorted.length === 0 ? Number.NaN : sum / sorted.length),
  };
};

/** Event-loop delay sampling: often enough for a p99, rarely enough to cost nothing. */
export const LOOP_RESOLUTION_MS = 10;

/** The histogram counts the sampling interval too: what is reported is the delay beyond it. */
export const loopDelaySummary = (h: { percentile(p: number): number; max: number }) => ({
  p50: Math.max(0, h.percentile(50) / 1e6 - LOOP_RESOLUTION_MS),
  p99: Math.max(0, h.percentile(99) / 1e6 - LOOP_RESOLUTION_MS),
  max: Math.max(0, h.max / 1e6 - LOOP_RESOLUTION_MS),
});
