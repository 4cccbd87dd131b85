import { describe, expect, it } from "vitest";
import { Fanout, type FanoutOptions } from "../../lambdas/core/fanout.ts";
import type { ConnectionNotifier } from "../../lambdas/core/ports.ts";
import {
  FakeConnectionNotifier,
  FakeConnectionRegistry,
  GatedNotifier,
  RecordingDiagnostics,
} from "../support/fakes.ts";

const THREAD = "0196a0b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b";

const setup = (
  options: FanoutOptions = { concurrency: 4, budgetMs: 60_000 },
  notifier: ConnectionNotifier = new FakeConnectionNotifier(),
) => {
  const registry = new FakeConnectionRegistry();
  const diagnostics = new RecordingDiagnostics();
  return { registry, diagnostics, fanout: new Fanout(notifier, registry, options, diagnostics) };
};

describe("Fanout.deliver", () => {
  it("sends the frame to every connection and counts the deliveries", async () => {
    const notifier = new FakeConnectionNotifier();
    const { fanout } = setup(undefined, notifier);
    const result = await fanout.deliver(THREAD, ["c1", "c2", "c3"], "frame");
    expect(result).toEqual({ sent: 3, gone: 0, failed: 0, skipped: 0 });
    for (const id of ["c1", "c2", "c3"]) expect(notifier.framesFor(id)).toEqual(["frame"]);
  });

  it("does nothing for an empty list", async () => {
    const notifier = new FakeConnectionNotifier();
    const { fanout } = setup(undefined, notifier);
    expect(await fanout.deliver(THREAD, [], "frame")).toEqual({ sent: 0, gone: 0, failed: 0, skipped: 0 });
    expect(notifier.calls).toEqual([]);
  });

  it("never has more than `concurrency` sends in flight, and starts the next one as one finishes", async () => {
    const notifier = new GatedNotifier();
    const { fanout } = setup({ concurrency: 2, budgetMs: 60_000 }, notifier);
    const ids = ["c1", "c2", "c3", "c4", "c5"];

    const delivering = fanout.deliver(THREAD, ids, "frame");
    await notifier.untilStarted(2);
    expect(notifier.started).toEqual(["c1", "c2"]);
    expect(notifier.inFlight).toBe(2);

    notifier.releaseNext();
    await notifier.untilStarted(3);
    expect(notifier.started).toEqual(["c1", "c2", "c3"]);
    notifier.releaseNext();
    await notifier.untilStarted(4);
    notifier.releaseNext();
    await notifier.untilStarted(5);
    notifier.releaseNext();
    notifier.releaseNext();

    expect(await delivering).toEqual({ sent: 5, gone: 0, failed: 0, skipped: 0 });
    expect(notifier.started).toEqual(ids);
    expect(notifier.maxInFlight).toBe(2);
  });

  it("counts a gone connection and removes it from the registry", async () => {
    const notifier = new FakeConnectionNotifier();
    const { fanout, registry } = setup(undefined, notifier);
    registry.addSubscription("c-gone", THREAD);
    registry.addSubscription("c-live", THREAD);
    notifier.gone.add("c-gone");

    const result = await fanout.deliver(THREAD, ["c-gone", "c-live"], "frame");

    expect(result).toEqual({ sent: 1, gone: 1, failed: 0, skipped: 0 });
    expect(registry.callsTo("remove")).toEqual([["c-gone"]]);
    expect(registry.subscribersOf(THREAD)).toEqual(["c-live"]);
    expect(registry.connectionThreads.has("c-gone")).toBe(false);
  });

  it("takes a gone connection out of the thread's subscribers even when its own record expired", async () => {
    const notifier = new FakeConnectionNotifier();
    const { fanout, registry } = setup(undefined, notifier);
    // The thread's subscriber set still names the connection; the connection's thread list is gone.
    registry.addSubscription("c-gone", THREAD);
    registry.connectionThreads.delete("c-gone");
    notifier.gone.add("c-gone");

    await fanout.deliver(THREAD, ["c-gone"], "frame");

    expect(registry.callsTo("unsubscribe")).toEqual([["c-gone", THREAD]]);
    expect(registry.subscribersOf(THREAD)).toEqual([]);
  });

  it("counts a failed send, warns, and still delivers to the others", async () => {
    const notifier = new FakeConnectionNotifier();
    const { fanout, diagnostics, registry } = setup(undefined, notifier);
    notifier.failing.add("c2");

    const result = await fanout.deliver(THREAD, ["c1", "c2", "c3"], "frame");

    expect(result).toEqual({ sent: 2, gone: 0, failed: 1, skipped: 0 });
    expect(diagnostics.warnings).toEqual([
      {
        message: "websocket delivery failed",
        attributes: { connectionId: "c2", error: "websocket unavailable: down" },
      },
    ]);
    expect(registry.callsTo("remove")).toEqual([]);
  });

  it("only warns when a gone connection cannot be removed from the registry", async () => {
    const notifier = new FakeConnectionNotifier();
    const { fanout, registry, diagnostics } = setup(undefined, notifier);
    notifier.gone.add("c1");
    registry.down = true;

    expect(await fanout.deliver(THREAD, ["c1"], "frame")).toEqual({
      sent: 0,
      gone: 1,
      failed: 0,
      skipped: 0,
    });
    expect(diagnostics.messages()).toEqual(["could not forget gone connection"]);
  });

  it("counts a rejected in-flight send as failed", async () => {
    const notifier = new GatedNotifier();
    const { fanout } = setup({ concurrency: 1, budgetMs: 60_000 }, notifier);
    const delivering = fanout.deliver(THREAD, ["c1", "c2"], "frame");
    await notifier.untilStarted(1);
    notifier.pending.shift()?.fail(new Error("socket hang up"));
    await notifier.untilStarted(2);
    notifier.releaseNext("gone");
    expect(await delivering).toEqual({ sent: 0, gone: 1, failed: 1, skipped: 0 });
  });

  it("starts no delivery once the budget is spent (a budget spent before the first send)", async () => {
    // The budget is measured with performance.now(), which the core does not let a test move; a
    // negative budget is the one deterministic way to be past the deadline from the start.
    const notifier = new FakeConnectionNotifier();
    const { fanout } = setup({ concurrency: 2, budgetMs: -1 }, notifier);
    expect(await fanout.deliver(THREAD, ["c1", "c2", "c3"], "frame")).toEqual({
      sent: 0,
      gone: 0,
      failed: 0,
      skipped: 3,
    });
    expect(notifier.calls).toEqual([]);
  });
});
