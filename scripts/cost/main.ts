/**
 * `npm run cost:idle` — the idle cost of every environment, line by line, from the synthesized
 * templates and scripts/cost/prices.json. `-- --env dev` limits it to one environment;
 * `-- --write` also replaces the generated tables in docs/deploy.md.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ENVIRONMENTS, selectEnvironment } from "../../lib/config/environments.ts";
import {
  idleCost,
  loadPrices,
  REPO_ROOT,
  renderTable,
  replaceBlock,
  synthesizeTemplates,
  total,
} from "./idle-cost.ts";

const { values } = parseArgs({
  options: { env: { type: "string" }, write: { type: "boolean", default: false } },
});

const prices = loadPrices();
const names = values.env !== undefined ? [selectEnvironment(values.env).name] : Object.keys(ENVIRONMENTS);
const DOC = join(REPO_ROOT, "docs", "deploy.md");
let document = values.write ? readFileSync(DOC, "utf8") : "";

for (const name of names) {
  const config = selectEnvironment(name);
  const lines = idleCost(synthesizeTemplates(config), prices);
  const table = renderTable(lines);
  console.log(
    `\n${name} (${config.region}, prices of ${prices.compiled}): $${total(lines).toFixed(2)}/month\n`,
  );
  console.log(table);
  if (values.write) document = replaceBlock(document, name, table);
}
if (values.write) {
  writeFileSync(DOC, document);
  console.log(`\nwrote ${DOC}`);
}
