/** The README's configuration table lists every variable the Lambdas read. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CONFIG_KEYS } from "../../lambdas/runtime/config.ts";

describe("README configuration table", () => {
  it("has a row for every environment variable in lambdas/runtime/config.ts", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const rows = new Set([...readme.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]));
    expect(CONFIG_KEYS.filter((key) => !rows.has(key))).toEqual([]);
  });
});
