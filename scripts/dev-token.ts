/**
 * `npm run token -- --sub <user> [--roles admin,service] [--ttl 3600]`: prints a development token
 * signed with JWT_SECRET (default: the local stack's secret), with JWT_ISSUER, JWT_AUDIENCE and
 * JWT_ROLES_CLAIM when set, as the local stack reads them.
 */
import { parseArgs } from "node:util";
import { type PrincipalRole, ROLE_CLAIMS } from "../lambdas/core/model.ts";
import { LOCAL_DEFAULTS } from "./local-stack/defaults.ts";
import { signDevToken } from "./local-stack/tokens.ts";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: "dev-user" },
    roles: { type: "string", default: "" },
    ttl: { type: "string", default: String(12 * 3600) },
  },
});

const roles = (values.roles ?? "")
  .split(",")
  .map((r) => r.trim())
  .filter((r) => r !== "");
const unknown = roles.filter((r) => !(ROLE_CLAIMS as readonly string[]).includes(r));
if (unknown.length > 0) {
  console.error(`unknown role(s): ${unknown.join(", ")} (known: ${ROLE_CLAIMS.join(", ")})`);
  process.exit(2);
}

console.log(
  await signDevToken({
    secret: process.env.JWT_SECRET ?? (LOCAL_DEFAULTS.JWT_SECRET as string),
    sub: values.sub ?? "dev-user",
    roles: roles as PrincipalRole[],
    ttlSeconds: Number(values.ttl),
    ...(process.env.JWT_ISSUER !== undefined ? { issuer: process.env.JWT_ISSUER } : {}),
    ...(process.env.JWT_AUDIENCE !== undefined ? { audience: process.env.JWT_AUDIENCE } : {}),
    ...(process.env.JWT_ROLES_CLAIM !== undefined ? { rolesClaim: process.env.JWT_ROLES_CLAIM } : {}),
  }),
);
