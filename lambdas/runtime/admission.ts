/**
 * Telling overload from outage, per process.
 *
 * A process whose CPU is saturated sees every call it makes time out — not because Redis or SQS is
 * down, but because it cannot read their answers in time. Taking those timeouts for an outage opens
 * the breakers and sends accepts into the PostgreSQL lane, which costs more per message and keeps
 * the overload going (a metastable failure). So:
 *  - `LoadMonitor` measures the event loop's lag (how late a 25 ms timer fires), smoothed, and only
 *    while requests are in flight: a Lambda environment frozen between invocations is not late;
 *  - `AdmissionGate` sheds work at the door — `503 overloaded` with Retry-After, before any tier is
 *    touched — when too many accepts are in flight or the loop lags: with a probability that rises
 *    from 0 at the lag limit to 1 at twice it, so the process keeps serving what it can carry;
 *  - `TierGuard` asks the monitor before counting a timeout against a tier (tier-guard.ts).
 * In Lambda one environment serves one request at a time, so neither signal fires there; the local
 * stack and any long-running host of the handlers serve many at once on one event loop.
 * (The same idea as toobusy-js and @fastify/under-pressure, for handlers rather than a server.)
 */
import { OverloadedError } from "../core/errors.ts";

export interface LoadMonitorOptions {
  /** Lag above which the process counts as overloaded (ms); 0 switches the lag signal off. */
  readonly maxLagMs: number;
  /** Requests in flight at which the process counts as overloaded whatever the lag (0: never). */
  readonly maxInFlight?: number;
  /** How often the loop is sampled (ms). */
  readonly sampleMs?: number;
}

/** Weight of the newest sample in the smoothed lag: a lone pause (a GC, a burst of logs) moves it little, a loop that stays late moves it within ~10 samples. */
const SMOOTHING = 0.1;

/** How long a single late sample keeps the process counted as overloaded (ms). */
const PEAK_MEMORY_MS = 1000;

export class LoadMonitor {
  private lag = 0;
  /** The latest sample that was twice the limit or more, and when (performance.now()). */
  private peakAt = Number.NEGATIVE_INFINITY;
  private inflight = 0;
  /** Counts the moments nothing was in flight: a sample that spans one is not a lag. */
  private idlePeriods = 0;
  private sampled = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly sampleMs: number;

  constructor(private readonly options: LoadMonitorOptions) {
    this.sampleMs = options.sampleMs ?? 25;
  }

  /** Smoothed event-loop lag while requests were in flight (ms). */
  get lagMs(): number {
    return this.lag;
  }

  get inFlight(): number {
    return this.inflight;
  }

  /** Whether the sampler is running (it stops once nothing is in flight). */
  get sampling(): boolean {
    return this.timer !== undefined;
  }

  /** Samples taken so far. */
  get samples(): number {
    return this.sampled;
  }

  /**
   * Whether a timeout now says more about this process than about the tier: the smoothed lag is
   * past the limit, or a sample in the last second was twice it, or too many requests are in
   * flight. Quicker to say yes than the shedding signal, so that a breaker does not open in the
   * time the smoothed lag takes to rise.
   */
  overloaded(): boolean {
    const { maxLagMs, maxInFlight = 0 } = this.options;
    if (maxInFlight > 0 && this.inflight >= maxInFlight) return true;
    if (maxLagMs <= 0) return false;
    return this.lag > maxLagMs || performance.now() - this.peakAt < PEAK_MEMORY_MS;
  }

  /**
   * A request began (any route: the HTTP and WebSocket middlewares call this); the returned
   * function ends it. Sampling runs only while one is in flight.
   */
  begin(): () => void {
    this.inflight++;
    if (this.timer === undefined && this.options.maxLagMs > 0) this.schedule();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.inflight--;
      // Idle: whatever the loop did before says nothing about the next request. (A Lambda
      // environment is frozen right after its answer, before a pending sample could fire.)
      if (this.inflight === 0) {
        this.idlePeriods++;
        this.lag = 0;
        this.peakAt = Number.NEGATIVE_INFINITY;
      }
    };
  }

  /** Feeds one measured lateness (ms) into the smoothed lag (exposed for tests of the policy). */
  record(lateMs: number): void {
    this.lag += (Math.max(0, lateMs) - this.lag) * SMOOTHING;
    if (this.options.maxLagMs > 0 && lateMs >= 2 * this.options.maxLagMs) this.peakAt = performance.now();
  }

  private schedule(): void {
    const due = performance.now() + this.sampleMs;
    const idlePeriods = this.idlePeriods;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Nothing in flight: stop sampling until the next request.
      if (this.inflight === 0) return;
      // The process went idle since this sample was due to start (and may have been frozen, as a
      // Lambda environment is between invocations): its lateness is not a lag.
      if (idlePeriods === this.idlePeriods) {
        this.record(performance.now() - due);
        this.sampled++;
      }
      this.schedule();
    }, this.sampleMs);
    this.timer.unref();
  }
}

export interface AdmissionOptions {
  /** Accepts in flight in this process above which new ones are shed; 0: no limit. */
  readonly maxInFlight: number;
  readonly maxLagMs: number;
  readonly retryAfterSeconds: number;
  readonly random?: () => number;
}

export class AdmissionGate {
  private admitted = 0;
  private readonly random: () => number;

  constructor(
    private readonly monitor: LoadMonitor,
    private readonly options: AdmissionOptions,
  ) {
    this.random = options.random ?? Math.random;
  }

  /** Accepts this gate let in that have not ended yet. */
  get inFlight(): number {
    return this.admitted;
  }

  /** Lets one request in (the returned function ends it) or throws `OverloadedError`. */
  enter(): () => void {
    const { maxInFlight, maxLagMs, retryAfterSeconds } = this.options;
    if (maxInFlight > 0 && this.admitted >= maxInFlight)
      throw new OverloadedError(`more than ${maxInFlight} requests in flight`, retryAfterSeconds);
    if (maxLagMs > 0) {
      const excess = (this.monitor.lagMs - maxLagMs) / maxLagMs;
      if (excess > 0 && this.random() < excess)
        throw new OverloadedError(
          `event loop ${Math.round(this.monitor.lagMs)} ms behind (limit ${maxLagMs} ms)`,
          retryAfterSeconds,
        );
    }
    this.admitted++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.admitted--;
    };
  }
}

/**
 * Counts a request in the monitor and, for a route that sheds, lets it through the gate first
 * (throwing `OverloadedError`); the returned function ends both. The HTTP and WebSocket
 * middlewares and the local gateway admit requests this one way.
 */
export const admit = (monitor: LoadMonitor, gate?: AdmissionGate): (() => void) => {
  const leave = gate?.enter();
  const end = monitor.begin();
  return () => {
    end();
    leave?.();
  };
};
