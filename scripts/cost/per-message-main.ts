/**
 * `npm run cost` — the AWS cost per million accepted messages of every environment, line by line,
 * and its idle cost per month, from the synthesized templates, scripts/cost/prices.json and the
 * workload assumptions (scripts/cost/usage.json, overridden by docs/performance/usage.json).
 * `-- --env dev` limits it to one environment; `-- --write` also replaces the generated block in
 * docs/performance.md (`-- --doc <file>` writes another file).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ENVIRONMENTS, selectEnvironment } from "../../lib/config/environments.ts";
import { loadPrices, REPO_ROOT, synthesizeTemplates } from "./idle-cost.ts";
import {
  loadUsage,
  perMessageCost,
  renderAssumptions,
  renderPerMessage,
  replaceCostBlock,
} from "./per-message.ts";

const { values } = parseArgs({
  options: {
    env: { type: "string" },
    write: { type: "boolean", default: false },
    doc: { type: "string", default: join(REPO_ROOT, "docs", "performance.md") },
  },
});

const prices = loadPrices();
const usage = loadUsage();
const names = values.env !== undefined ? [selectEnvironment(values.env).name] : Object.keys(ENVIRONMENTS);
const sections = names.map((name) => {
  const config = selectEnvironment(name);
  const cost = perMessageCost(synthesizeTemplates(config), prices, usage);
  return renderPerMessage(`${name} (${config.region}, prices of ${prices.compiled})`, cost);
});
const assumptions = renderAssumptions(usage);
const block = [...sections, assumptions].join("\n\n");
console.log(`\n${block}\n`);

if (values.write) {
  const document = readFileSync(values.doc, "utf8");
  writeFileSync(values.doc, replaceCostBlock(document, block));
  console.log(`wrote ${values.doc}`);
}
