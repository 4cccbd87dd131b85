/**
 * Fail fast when a tier is down: a circuit breaker (cockatiel) per tier and per process opens after
 * consecutive outage errors, so requests stop waiting on timeouts, and probes the tier again after
 * a pause. Outage errors become `TierUnavailableError`; data errors pass through untouched and do
 * not count against the tier. Neither do timeouts while this process itself is overloaded: they
 * become `TierUnavailableError` with `overloaded: true`, which no fallback takes.
 */

import type { CircuitBreakerPolicy } from "cockatiel";
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type IPolicy,
  TaskCancelledError,
  TimeoutStrategy,
  timeout,
  wrap,
} from "cockatiel";
import { describeError, type Tier, TierUnavailableError } from "../../core/errors.ts";

export interface BreakerOptions {
  readonly failureThreshold: number;
  readonly halfOpenAfterMs: number;
  /** Outer bound on one call, on top of the client's own timeouts. */
  readonly timeoutMs?: number;
  /**
   * Whether this process is overloaded (its event loop lagging): a call that fails then, other
   * than by a refusal before it was sent, is not counted against the tier (runtime/admission.ts).
   */
  readonly overloaded?: () => boolean;
}

export type BreakerState = "closed" | "open" | "half_open";

export class TierGuard {
  private readonly breaker: CircuitBreakerPolicy;
  private readonly policy: IPolicy;
  private readonly listeners: ((state: BreakerState) => void)[] = [];
  private readonly overloadedNow: () => boolean;

  constructor(
    readonly tier: Tier,
    options: BreakerOptions,
    private readonly isOutage: (error: unknown) => boolean,
    /** Outage errors of calls that certainly were not sent (a refused or closed connection). */
    private readonly wasNotSent: (error: unknown) => boolean = () => false,
  ) {
    const overloaded = options.overloaded ?? (() => false);
    this.overloadedNow = overloaded;
    const outage = (error: unknown): boolean =>
      (error instanceof TaskCancelledError || isOutage(error)) && !(overloaded() && !wasNotSent(error));
    this.breaker = circuitBreaker(handleWhen(outage), {
      halfOpenAfter: options.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(options.failureThreshold),
    });
    this.policy =
      options.timeoutMs === undefined
        ? this.breaker
        : // abortOnReturn: false: aborting the (unused) signal after every call creates a DOMException,
          // a measurable cost on a path that runs three times per accepted message.
          wrap(
            this.breaker,
            timeout(options.timeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false }),
          );
    this.breaker.onStateChange((state) => {
      for (const listener of this.listeners) listener(toBreakerState(state));
    });
  }

  get state(): BreakerState {
    return toBreakerState(this.breaker.state);
  }

  onStateChange(listener: (state: BreakerState) => void): void {
    this.listeners.push(listener);
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await this.policy.execute(work);
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new TierUnavailableError(this.tier, "circuit open", { cause: error, maybeApplied: false });
      }
      if (error instanceof TaskCancelledError || this.isOutage(error)) {
        const notSent = this.wasNotSent(error);
        throw new TierUnavailableError(this.tier, describeError(error), {
          cause: error,
          maybeApplied: !notSent,
          overloaded: !notSent && this.overloadedNow(),
        });
      }
      throw error;
    }
  }
}

const toBreakerState = (state: CircuitState): BreakerState =>
  state === CircuitState.Closed ? "closed" : state === CircuitState.HalfOpen ? "half_open" : "open";
