/**
 * Values cross stacks as CloudFormation exports (Fn::ImportValue), never as Fn::GetStackOutput:
 * CloudFormation refuses to change an export that another stack imports, so a replaced proxy,
 * cache, queue or secret can never leave the functions pointing at the old one (docs/deploy.md,
 * "Replacing a resource the App stack uses").
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import type { Json } from "./support/template-queries.ts";

const synthesized: Synthesized[] = [synthesize(environment("dev")), synthesize(environment("prod"))];

/** Every value of `kind` (an intrinsic's name) anywhere in `node`. */
const find = (node: Json, kind: string, out: Json[] = []): Json[] => {
  if (Array.isArray(node)) for (const item of node) find(item, kind, out);
  else if (typeof node === "object" && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if (key === kind) out.push(value);
      find(value, kind, out);
    }
  }
  return out;
};

describe("cross-stack references", () => {
  it("are strong by default (cdk.json)", () => {
    const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8"));
    expect(cdkJson.context["@aws-cdk/core:defaultCrossStackReferences"]).toBe("strong");
  });

  describe.each(synthesized)("$config.name", (s) => {
    const templates = { network: s.network.toJSON(), data: s.data.toJSON(), app: s.app.toJSON() };

    it("never read another stack's output with Fn::GetStackOutput", () => {
      for (const t of Object.values(templates)) expect(find(t, "Fn::GetStackOutput")).toEqual([]);
    });

    it("import only values the producing stack exports, so the producer cannot change them under the consumer", () => {
      const exported = new Set(
        [templates.network, templates.data].flatMap((t) =>
          Object.values((t.Outputs ?? {}) as Record<string, Json>)
            .map((o) => o.Export?.Name)
            .filter((n): n is string => typeof n === "string"),
        ),
      );
      const imported = [
        ...find(templates.data, "Fn::ImportValue"),
        ...find(templates.app, "Fn::ImportValue"),
      ];
      // The functions' settings (queues, cache, database, secrets) all reach the App stack this way.
      expect(imported.length).toBeGreaterThan(10);
      for (const name of imported) expect(exported.has(name), String(name)).toBe(true);
      const functions = Object.values(templates.app.Resources as Record<string, Json>).filter(
        (r) => r.Type === "AWS::Lambda::Function" && r.Properties?.Environment?.Variables?.PERSIST_QUEUE_URL,
      );
      expect(functions.length).toBeGreaterThan(0);
      for (const fn of functions) {
        const vars = fn.Properties.Environment.Variables;
        for (const key of [
          "PERSIST_QUEUE_URL",
          "ANALYTICS_QUEUE_URL",
          "DATABASE_SECRET_ARN",
          "DATABASE_HOST",
        ]) {
          expect(find(vars[key], "Fn::ImportValue"), key).toHaveLength(1);
        }
      }
    });
  });
});
