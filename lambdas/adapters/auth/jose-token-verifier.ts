/**
 * Bearer tokens, verified with jose: HS256 with a shared secret (local), or RS256/ES256 against an
 * OIDC/Cognito JWKS (AWS). The accepted algorithms are pinned per key type, so `alg: none` and
 * HS/RS confusion are refused; exp is required, iss/aud are checked when configured.
 */
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { ServiceUnavailableError, UnauthorizedError } from "../../core/errors.ts";
import { type Principal, type PrincipalRole, ROLE_CLAIMS } from "../../core/model.ts";
import type { TokenVerifier } from "../../core/ports.ts";

export interface JoseVerifierOptions {
  readonly secret?: string;
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** Claim holding the roles: an array or a space-separated string (e.g. "cognito:groups"). */
  readonly rolesClaim: string;
  readonly clockToleranceSeconds: number;
  readonly timeoutMs?: number;
}

const MAX_TOKEN_LENGTH = 8192;
/** Verified tokens remembered per execution environment (a client sends the same token again and again). */
const CACHE_SIZE = 1000;

/**
 * The key set could not be fetched (timeout, network error, an answer other than 200 or not a key
 * set): the token may be perfectly valid, so this is the service's failure, not the client's.
 * A token whose key id is not in a fetched set (JWKSNoMatchingKey) is the client's.
 */
const keySetUnavailable = (error: unknown): boolean =>
  !(error instanceof errors.JOSEError) ||
  error instanceof errors.JWKSTimeout ||
  error instanceof errors.JWKSInvalid ||
  (error.code === errors.JOSEError.code && error.message.includes("JSON Web Key Set HTTP response"));

export const rolesFrom = (payload: JWTPayload, claim: string): PrincipalRole[] => {
  const raw = payload[claim];
  const values = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(" ") : [];
  return ROLE_CLAIMS.filter((role) => values.includes(role));
};

export class JoseTokenVerifier implements TokenVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];
  /**
   * token → principal and expiry. A signature check costs an HMAC or RSA operation on the crypto
   * thread pool; the answer for a given token string cannot change before it expires (JWTs are not
   * revocable), so it is kept, at most until `exp`. Insertion-ordered map used as an LRU.
   */
  private readonly verified = new Map<string, { principal: Principal; expiresAtMs: number }>();

  constructor(private readonly options: JoseVerifierOptions) {
    if (options.secret !== undefined) {
      this.key = new TextEncoder().encode(options.secret);
      this.algorithms = ["HS256"];
    } else if (options.jwksUrl !== undefined) {
      this.key = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: options.timeoutMs ?? 2000 });
      this.algorithms = ["RS256", "ES256"];
    } else {
      throw new Error("JoseTokenVerifier needs a secret or a JWKS URL");
    }
  }

  async verify(token: string): Promise<Principal> {
    if (token.length > MAX_TOKEN_LENGTH) throw new UnauthorizedError("Token too long");
    const known = this.verified.get(token);
    if (known !== undefined) {
      this.verified.delete(token);
      if (known.expiresAtMs > Date.now()) {
        this.verified.set(token, known);
        return known.principal;
      }
    }
    return this.verifySignature(token);
  }

  private async verifySignature(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key as Uint8Array, {
        algorithms: this.algorithms,
        requiredClaims: ["sub", "exp"],
        clockTolerance: this.options.clockToleranceSeconds,
        ...(this.options.issuer !== undefined ? { issuer: this.options.issuer } : {}),
        ...(this.options.audience !== undefined ? { audience: this.options.audience } : {}),
      }));
    } catch (error) {
      if (typeof this.key === "function" && keySetUnavailable(error))
        throw new ServiceUnavailableError("Token keys unavailable; retry shortly", { cause: error });
      throw new UnauthorizedError("Invalid or expired token", { cause: error });
    }
    const sub = payload.sub;
    if (typeof sub !== "string" || sub.length === 0 || sub.length > 256) {
      throw new UnauthorizedError("Token subject is missing or invalid");
    }
    // exp is required above; the clock tolerance is not extended by the cache.
    const expiresAtMs = (payload.exp as number) * 1000;
    const principal: Principal = {
      userId: sub,
      roles: rolesFrom(payload, this.options.rolesClaim),
      expiresAt: expiresAtMs,
    };
    this.verified.set(token, { principal, expiresAtMs });
    if (this.verified.size > CACHE_SIZE) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    return principal;
  }
}
