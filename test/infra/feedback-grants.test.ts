/**
 * The feedback and analytics routes' grants: the feedback routes send to the analytics queue and
 * nowhere else; the admin analytics read reaches ClickHouse's secret only.
 */
import { describe, expect, it } from "vitest";
import { HTTP_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import { type Json, resources } from "./support/template-queries.ts";

const synthesized: Synthesized[] = [synthesize(environment("dev")), synthesize(environment("prod"))];

describe.each(synthesized)("feedback and analytics grants ($config.name)", (s) => {
  const statementsOf = (fnId: string): Json[] =>
    resources(s.app, "AWS::IAM::Policy")
      .filter(([id]) => id.startsWith(`Http${fnId}FunctionServiceRoleDefaultPolicy`))
      .flatMap(([, p]) => p.Properties?.PolicyDocument.Statement as Json[]);
  const sendTargets = (fnId: string): string[] =>
    statementsOf(fnId)
      .filter((st) => [st.Action].flat().includes("sqs:SendMessage"))
      .flatMap((st) => [st.Resource].flat())
      .map((r) => JSON.stringify(r));

  it("lets the feedback routes send to the analytics queue, not to the persist queue", () => {
    for (const id of ["PutFeedback", "DeleteFeedback"]) {
      const targets = sendTargets(id);
      expect(targets, id).toHaveLength(1);
      expect(targets[0], id).toContain("AnalyticsQueue");
      expect(targets[0], id).not.toContain("PersistQueue");
      expect(JSON.stringify(statementsOf(id)), id).not.toContain("execute-api");
    }
    // The accept path's grant is the persist queue: the two are told apart.
    expect(sendTargets("PostMessage")).toEqual([expect.stringContaining("PersistQueue")]);
  });

  it("gives the admin analytics read the ClickHouse secret and nothing else", () => {
    expect(HTTP_FUNCTIONS.find((f) => f.id === "GetAdminAnalytics")?.needs).toEqual(["clickhouse"]);
    const statements = statementsOf("GetAdminAnalytics");
    expect(statements.flatMap((st) => [st.Action].flat()).sort()).toEqual([
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
    ]);
    expect(JSON.stringify(statements)).toContain(`secret:${s.config.clickhouse.secretName}-??????`);
  });

  it("gives the usage route the stores only", () => {
    const actions = statementsOf("GetThreadUsage").flatMap((st) => [st.Action].flat());
    expect(actions.filter((a) => !a.startsWith("secretsmanager:"))).toEqual([]);
  });
});
