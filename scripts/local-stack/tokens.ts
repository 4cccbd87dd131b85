/** Development tokens, signed with the local HS256 secret (the same library the Lambdas verify with). */
import { SignJWT } from "jose";
import type { PrincipalRole } from "../../lambdas/core/model.ts";

export interface DevTokenOptions {
  readonly secret: string;
  readonly sub: string;
  readonly roles?: readonly PrincipalRole[];
  readonly ttlSeconds?: number;
  readonly issuer?: string;
  readonly audience?: string;
  readonly rolesClaim?: string;
}

export const signDevToken = async (options: DevTokenOptions): Promise<string> => {
  let jwt = new SignJWT({ [options.rolesClaim ?? "roles"]: [...(options.roles ?? [])] })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds ?? 12 * 3600}s`);
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
};
