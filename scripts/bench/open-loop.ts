/**
 * The open-model schedule of the load generators: requests are due at a fixed rate whatever the
 * answers do, so latency is measured from when each was due.
 */

/** Calls `fire(i, dueTime)` at `rate` per second for `durationMs`; resolves when all have settled. */
export const openLoop = async (
  rate: number,
  durationMs: number,
  fire: (i: number, due: number) => Promise<void>,
): Promise<void> => {
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
      // Sleep until the next request is due (not a busy 1 ms tick, which would cost the CPU it measures).
      else setTimeout(tick, Math.max(0, start + (sent * 1000) / rate - performance.now()));
    };
    tick();
  });
  await Promise.all([...inflight]);
};
