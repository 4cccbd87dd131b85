import { describe, expect, it } from "vitest";
import { once } from "../../lambdas/runtime/once.ts";

describe("once", () => {
  it("builds on first use and returns the same value afterwards", () => {
    let builds = 0;
    const get = once(() => ({ n: ++builds }));
    expect(get()).toBe(get());
    expect(builds).toBe(1);
  });

  it("keeps a build that resolved", async () => {
    let builds = 0;
    const get = once(async () => ++builds);
    expect(await get()).toBe(1);
    expect(await get()).toBe(1);
  });

  it("forgets a build that failed, so the next call builds again", async () => {
    let builds = 0;
    const get = once(async () => {
      builds++;
      if (builds === 1) throw new Error("secret fetch timed out");
      return "client";
    });
    await expect(get()).rejects.toThrow("secret fetch timed out");
    expect(await get()).toBe("client");
    expect(builds).toBe(2);
  });

  it("forgets a build that threw synchronously", () => {
    let builds = 0;
    const get = once(() => {
      builds++;
      if (builds === 1) throw new Error("bad config");
      return "ok";
    });
    expect(() => get()).toThrow("bad config");
    expect(get()).toBe("ok");
  });
});
