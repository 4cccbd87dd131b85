import { describe, expect, it } from "vitest";
import { AnalyticsService, daysOf, EMPTY_FIGURES } from "../../lambdas/core/analytics-service.ts";
import type { AnalyticsFigures, AnalyticsSummary } from "../../lambdas/core/ports.ts";
import { UsageService } from "../../lambdas/core/usage-service.ts";
import { admin, createWorld, ManualClock, makeMessage, service, user } from "../support/fakes.ts";
import {
  FakeAnalyticsReader,
  FakeFeedbackRepository,
  FakeUsageRepository,
} from "../support/feedback-fakes.ts";
import { caught } from "./caught.ts";

describe("UsageService", () => {
  const setup = () => {
    const w = createWorld();
    const feedback = new FakeFeedbackRepository(w.messages);
    const usage = new FakeUsageRepository(w.messages, feedback);
    return { w, feedback, usage, svc: new UsageService({ access: w.access, usage }) };
  };

  it("answers the owner (and a service) the thread's totals", async () => {
    const { w, feedback, svc } = setup();
    const thread = w.seedThread("alice");
    const reply = makeMessage(thread, 2, {
      role: "assistant",
      state: "complete",
      usage: { model: "m", input_tokens: 3, output_tokens: 5 },
    });
    w.messages.put(makeMessage(thread, 1), reply);
    await feedback.put({
      message: reply,
      model: "m",
      userId: "alice",
      rating: "up",
      reason: null,
      comment: null,
      nowMs: 1,
      dueAtMs: 2,
    });

    for (const principal of [user("alice"), service("agent")]) {
      expect(await svc.threadUsage(principal, thread.id)).toEqual({
        thread_id: thread.id,
        messages: { total: 2, user: 1, assistant: 1, system: 0 },
        assistant_states: { streaming: 0, complete: 1, cancelled: 0, error: 0 },
        tokens: { input: 3, output: 5 },
        feedback: { up: 1, down: 0 },
      });
    }
  });

  it("answers another user's thread, an admin's look and an unknown thread with 404 thread_not_found", async () => {
    const { w, usage, svc } = setup();
    const thread = w.seedThread("alice");
    for (const [principal, id] of [
      [user("bob"), thread.id],
      [admin("root"), thread.id],
      [user("alice"), "0190f2a8-0000-7000-8000-000000000000"],
    ] as const) {
      expect(await caught(svc.threadUsage(principal, id))).toMatchObject({ code: "thread_not_found" });
    }
    expect(usage.calls).toEqual([]);
  });

  it("answers 503 when PostgreSQL cannot be asked", async () => {
    const { w, usage, svc } = setup();
    const thread = w.cachedThread("alice");
    usage.down = true;
    expect(await caught(svc.threadUsage(user("alice"), thread.id))).toMatchObject({
      code: "service_unavailable",
    });
  });
});

describe("AnalyticsService", () => {
  const NOW = Date.parse("2025-03-10T15:00:00Z");
  const figures = (assistant: number): AnalyticsFigures => ({
    ...EMPTY_FIGURES,
    messages: { total: assistant, user: 0, assistant, system: 0 },
  });
  const summary: AnalyticsSummary = {
    groups: [{ key: "2025-03-05", ...figures(2) }],
    totals: figures(2),
  };
  const setup = () => {
    const reader = new FakeAnalyticsReader(summary);
    return { reader, svc: new AnalyticsService({ reader, clock: new ManualClock(NOW) }) };
  };
  const root = admin("root");

  it("is for admins only: 403 admin_required, whatever the query, before ClickHouse is asked", async () => {
    const { reader, svc } = setup();
    for (const principal of [user("alice"), service("agent")]) {
      for (const query of [{}, { from: "nonsense" }]) {
        expect(await caught(svc.report(principal, query))).toMatchObject({
          kind: "forbidden",
          code: "admin_required",
        });
      }
    }
    expect(reader.calls).toEqual([]);
  });

  it("covers the last 7 days (UTC) per day by default, every day listed", async () => {
    const { reader, svc } = setup();
    const report = await svc.report(root, {});
    expect(reader.queries).toEqual([{ from: "2025-03-04", to: "2025-03-10", groupBy: "day" }]);
    expect(report).toMatchObject({
      from: "2025-03-04",
      to: "2025-03-10",
      group_by: "day",
      totals: figures(2),
    });
    expect(report.groups.map((g) => g.key)).toEqual(daysOf("2025-03-04", "2025-03-10"));
    expect(report.groups.find((g) => g.key === "2025-03-05")).toEqual(summary.groups[0]);
    expect(report.groups.find((g) => g.key === "2025-03-06")).toEqual({
      key: "2025-03-06",
      ...EMPTY_FIGURES,
    });
  });

  it("groups by model as ClickHouse answers (no filling)", async () => {
    const { reader, svc } = setup();
    reader.answer = {
      groups: [
        { key: "m1", ...figures(1) },
        { key: null, ...figures(0) },
      ],
      totals: figures(1),
    };
    const report = await svc.report(root, { from: "2025-01-01", to: "2025-01-31", group_by: "model" });
    expect(reader.queries).toEqual([{ from: "2025-01-01", to: "2025-01-31", groupBy: "model" }]);
    expect(report.groups.map((g) => g.key)).toEqual(["m1", null]);
  });

  it("takes `to` alone as the end of a 7-day range, and accepts 366 days, a leap day included", async () => {
    const { reader, svc } = setup();
    await svc.report(root, { to: "2024-03-01" });
    await svc.report(root, { from: "2024-01-01", to: "2024-12-31" });
    expect(reader.queries.map((q) => [q.from, q.to])).toEqual([
      ["2024-02-24", "2024-03-01"],
      ["2024-01-01", "2024-12-31"],
    ]);
  });

  it.each([
    [{ from: "2025-03-02", to: "2025-03-01" }, "from"],
    [{ from: "2024-01-01", to: "2025-01-01" }, "to"],
    [{ from: "2023-02-29" }, "from"],
    [{ from: "2025-1-01" }, "from"],
    [{ to: "yesterday" }, "to"],
    [{ from: "1969-12-31", to: "1970-01-01" }, "from"],
    [{ group_by: "user" }, "group_by"],
    [{ limit: "5" }, "(body)"],
  ])("refuses %j with 422 validation_failed naming %s", async (query, path) => {
    const { reader, svc } = setup();
    const error = await caught(svc.report(root, query));
    expect(error).toMatchObject({ kind: "invalid", code: "validation_failed" });
    expect((error as { details: { path: string }[] }).details.map((d) => d.path)).toContain(path);
    expect(reader.calls).toEqual([]);
  });

  it("answers 503 when ClickHouse cannot be reached", async () => {
    const { reader, svc } = setup();
    reader.down = true;
    expect(await caught(svc.report(root, {}))).toMatchObject({ code: "service_unavailable" });
  });
});
