import { describe, expect, it, vi } from "vitest";
import { TierGuard } from "../../lambdas/adapters/resilience/tier-guard.ts";
import { OverloadedError, TierUnavailableError } from "../../lambdas/core/errors.ts";
import { AdmissionGate, LoadMonitor } from "../../lambdas/runtime/admission.ts";
import { describeFailure } from "../../lambdas/runtime/http-response.ts";
import { caught } from "./caught.ts";

/** Keeps the event loop busy for `ms`: the CPU starvation the monitor is there to notice. */
const blockLoop = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
};

describe("AdmissionGate", () => {
  it("sheds past the in-flight limit with 503 overloaded and Retry-After, and lets the next in once one ends", async () => {
    const gate = new AdmissionGate(new LoadMonitor({ maxLagMs: 0 }), {
      maxInFlight: 2,
      maxLagMs: 0,
      retryAfterSeconds: 1,
    });
    const first = gate.enter();
    gate.enter();

    const error = await caught(Promise.resolve().then(() => gate.enter()));
    expect(error).toBeInstanceOf(OverloadedError);
    expect(describeFailure(error, 2)).toMatchObject({
      status: 503,
      code: "overloaded",
      retryAfterSeconds: 1,
    });

    first();
    first(); // ending twice counts once
    expect(gate.inFlight).toBe(1);
    gate.enter();
    expect(gate.inFlight).toBe(2);
  });

  it("sheds by event-loop lag with a probability rising from 0 at the limit to 1 at twice it", () => {
    const monitor = new LoadMonitor({ maxLagMs: 30 });
    let draw = 0.5;
    const gate = new AdmissionGate(monitor, {
      maxInFlight: 0,
      maxLagMs: 30,
      retryAfterSeconds: 1,
      random: () => draw,
    });
    const lagOf = (ms: number) => {
      for (let i = 0; i < 500; i++) monitor.record(ms);
    };
    lagOf(30);
    expect(() => gate.enter()).not.toThrow(); // at the limit: nothing shed
    lagOf(40); // a third over: shed when the draw is below 1/3
    draw = 0.5;
    expect(() => gate.enter()).not.toThrow();
    draw = 0.2;
    expect(() => gate.enter()).toThrow(OverloadedError);
    lagOf(60); // twice the limit: every request
    draw = 0.999;
    expect(() => gate.enter()).toThrow(OverloadedError);
  });
});

describe("LoadMonitor", () => {
  it("sees a starved event loop while a request is in flight", async () => {
    const monitor = new LoadMonitor({ maxLagMs: 30 });
    const end = monitor.begin();
    blockLoop(600);
    await vi.waitFor(() => expect(monitor.overloaded()).toBe(true));
    expect(monitor.lagMs).toBeGreaterThan(30);
    end();
    await vi.waitFor(() => expect(monitor.sampling).toBe(false));
    expect(monitor.overloaded()).toBe(false);
  });

  it("does not count a pause with nothing in flight (a Lambda environment frozen between invocations)", async () => {
    const monitor = new LoadMonitor({ maxLagMs: 30 });
    monitor.begin()();
    blockLoop(200);
    await vi.waitFor(() => expect(monitor.sampling).toBe(false));
    expect(monitor.lagMs).toBe(0);
    expect(monitor.overloaded()).toBe(false);
  });

  it("does not count a freeze between two requests when the next one is in flight as the pending sample fires", async () => {
    const monitor = new LoadMonitor({ maxLagMs: 30 });
    const first = monitor.begin();
    await vi.waitFor(() => expect(monitor.samples).toBeGreaterThan(0));
    first(); // answered: a Lambda environment is frozen now, with a sample pending
    blockLoop(600); // the freeze
    const next = monitor.begin(); // thawed by the next invocation, before the sample fires
    const before = monitor.samples;
    await vi.waitFor(() => expect(monitor.samples).toBeGreaterThan(before + 1));
    expect(monitor.lagMs).toBeLessThan(30);
    expect(monitor.overloaded()).toBe(false);
    next();
  });
});

describe("TierGuard under overload", () => {
  const timeout = () => Promise.reject(new Error("timed out"));
  const refused = () => Promise.reject(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }));
  const isOutage = () => true;
  const wasNotSent = (e: unknown) => (e as { code?: string }).code === "ECONNREFUSED";

  it("does not count timeouts against the tier while the process is overloaded, and marks them overloaded", async () => {
    let overloaded = true;
    const guard = new TierGuard(
      "sqs",
      { failureThreshold: 3, halfOpenAfterMs: 60_000, overloaded: () => overloaded },
      isOutage,
      wasNotSent,
    );
    for (let i = 0; i < 10; i++) {
      const error = await caught(guard.run(timeout));
      expect(error).toBeInstanceOf(TierUnavailableError);
      expect(error).toMatchObject({ overloaded: true, maybeApplied: true });
    }
    expect(guard.state).toBe("closed");

    // The same timeouts with the process keeping up: an outage, and the breaker opens.
    overloaded = false;
    for (let i = 0; i < 3; i++) expect(await caught(guard.run(timeout))).toMatchObject({ overloaded: false });
    expect(guard.state).toBe("open");
  });

  it("still counts refusals (a call that was never sent) while overloaded: the tier is down", async () => {
    const guard = new TierGuard(
      "redis",
      { failureThreshold: 3, halfOpenAfterMs: 60_000, overloaded: () => true },
      isOutage,
      wasNotSent,
    );
    for (let i = 0; i < 3; i++)
      expect(await caught(guard.run(refused))).toMatchObject({ overloaded: false, maybeApplied: false });
    expect(guard.state).toBe("open");
  });
});

describe("LoadMonitor signals for the breakers", () => {
  it("counts the process overloaded for a second after one sample at twice the limit, before the smoothed lag rises", () => {
    const monitor = new LoadMonitor({ maxLagMs: 40 });
    monitor.record(10);
    expect(monitor.overloaded()).toBe(false);
    monitor.record(85);
    expect(monitor.lagMs).toBeLessThan(40);
    expect(monitor.overloaded()).toBe(true);
  });

  it("counts the process overloaded with too many requests in flight, whatever the lag", () => {
    const monitor = new LoadMonitor({ maxLagMs: 0, maxInFlight: 2 });
    const first = monitor.begin();
    expect(monitor.overloaded()).toBe(false);
    monitor.begin();
    expect(monitor.overloaded()).toBe(true);
    first();
    expect(monitor.overloaded()).toBe(false);
  });
});
