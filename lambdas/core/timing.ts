/** Per-request timings of each tier, reported as Server-Timing headers and metrics. */
export interface TierTiming {
  readonly name: string;
  readonly ms: number;
}

export class Stopwatch {
  private readonly started = performance.now();
  readonly timings: TierTiming[] = [];

  async time<T>(name: string, work: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await work();
    } finally {
      this.timings.push({ name, ms: performance.now() - start });
    }
  }

  total(): TierTiming {
    return { name: "total", ms: performance.now() - this.started };
  }
}
