/**
 * Tokens in the AWS configuration: RS256 against an OIDC-style JWKS endpoint, with issuer and
 * audience checks — and the attacks on it: algorithm confusion, alg none, foreign keys, tampering.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JoseTokenVerifier } from "../../lambdas/adapters/auth/jose-token-verifier.ts";
import { ServiceUnavailableError, UnauthorizedError } from "../../lambdas/core/errors.ts";
import { describeFailure } from "../../lambdas/runtime/http-response.ts";
import { startTestStack, type TestStack } from "../support/test-stack.ts";
import { RefusedError, WsClient } from "../support/ws-client.ts";

const ISSUER = "https://issuer.test/pool-1";
const AUDIENCE = "chat-web-client";

let t: TestStack;
let jwks: http.Server;
let keys: Awaited<ReturnType<typeof generateKeyPair>>;

beforeAll(async () => {
  keys = await generateKeyPair("RS256", { extractable: true });
  const publicJwk = { ...(await exportJWK(keys.publicKey)), kid: "key-1", alg: "RS256", use: "sig" };
  jwks = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
  const jwksUrl = jwksUrlOf(jwks);
  t = await startTestStack({
    env: {
      JWT_SECRET: "",
      JWT_JWKS_URL: jwksUrl,
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      JWT_ROLES_CLAIM: "cognito:groups",
    },
  });
});

const jwksUrlOf = (server: http.Server): string =>
  `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;

afterAll(async () => {
  await t.stop();
  await new Promise((resolve) => jwks.close(resolve));
});

const sign = (
  claims: JWTPayload,
  options: { issuer?: string; audience?: string; expires?: string | number; kid?: string } = {},
  key: Parameters<SignJWT["sign"]>[0] = keys.privateKey,
): Promise<string> =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: options.kid ?? "key-1" })
    .setSubject("alice")
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expires ?? "1h")
    .sign(key);

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");

const status = async (token: string): Promise<{ http: number; ws: number }> => {
  const res = await t.request("GET", "/api/threads", { token });
  const ws = await WsClient.connect(t.stack.wsUrl, token).then(
    async (client) => {
      await client.close();
      return 101;
    },
    (error: unknown) => (error instanceof RefusedError ? error.status : -1),
  );
  return { http: res.status, ws };
};

describe("RS256 tokens from a JWKS", () => {
  it("accepts a token with the right issuer, audience and key", async () => {
    expect(await status(await sign({}))).toEqual({ http: 200, ws: 101 });
  });

  it("reads roles from the configured claim", async () => {
    const admin = await sign({ "cognito:groups": ["admin"] });
    const thread = await t.createThread(await sign({}));
    const res = await t.request("POST", "/api/admin/recover-redis-cache", {
      token: admin,
      body: { thread_id: thread.id },
    });
    expect(res.status).toBe(200);
  });

  it("rejects a wrong issuer, a wrong audience, an expired token", async () => {
    expect(await status(await sign({}, { issuer: "https://evil.test" }))).toEqual({ http: 401, ws: 401 });
    expect(await status(await sign({}, { audience: "another-app" }))).toEqual({ http: 401, ws: 401 });
    expect(await status(await sign({}, { expires: Math.floor(Date.now() / 1000) - 60 }))).toEqual({
      http: 401,
      ws: 401,
    });
  });

  it("rejects HS256 signed with the public key (algorithm confusion)", async () => {
    const pem = await exportSPKI(keys.publicKey);
    const confused = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", kid: "key-1" })
      .setSubject("alice")
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode(pem));
    expect(await status(confused)).toEqual({ http: 401, ws: 401 });
  });

  it("rejects alg: none, a key that is not in the JWKS, and a tampered payload", async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const none = `${b64({ alg: "none", kid: "key-1" })}.${b64({ sub: "alice", iss: ISSUER, aud: AUDIENCE, exp })}.`;
    expect(await status(none)).toEqual({ http: 401, ws: 401 });

    const stranger = await generateKeyPair("RS256");
    expect(await status(await sign({}, {}, stranger.privateKey))).toEqual({ http: 401, ws: 401 });
    expect(await status(await sign({}, { kid: "key-2" }, stranger.privateKey))).toEqual({
      http: 401,
      ws: 401,
    });

    const [header, , signature] = (await sign({})).split(".");
    const forged = `${header}.${b64({ sub: "bob", iss: ISSUER, aud: AUDIENCE, exp, "cognito:groups": ["admin"] })}.${signature}`;
    expect(await status(forged)).toEqual({ http: 401, ws: 401 });
  });
});

describe("when the key set cannot be fetched", () => {
  const serve = async (handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> => {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
      close: () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  };
  const verifierFor = (jwksUrl: string) =>
    new JoseTokenVerifier({
      jwksUrl,
      issuer: ISSUER,
      audience: AUDIENCE,
      rolesClaim: "cognito:groups",
      clockToleranceSeconds: 0,
      timeoutMs: 300,
    });

  it("answers 'unavailable' (not 'unauthorized') when the JWKS endpoint fails, times out or is down", async () => {
    const token = await sign({});
    const failing = await serve((_req, res) => {
      res.writeHead(500);
      res.end("oops");
    });
    const notAKeySet = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ hello: "world" }));
    });
    const silent = await serve(() => undefined);
    const down = await serve(() => undefined);
    await down.close();
    try {
      for (const url of [failing.url, notAKeySet.url, silent.url, down.url]) {
        const error = await verifierFor(url)
          .verify(token)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(error, url).toBeInstanceOf(ServiceUnavailableError);
        // At the edge: a 503 with the configured Retry-After, not a 401.
        expect(describeFailure(error, 3)).toMatchObject({ status: 503, retryAfterSeconds: 3 });
      }
    } finally {
      await Promise.all([failing.close(), notAKeySet.close(), silent.close()]);
    }
  });

  it("still refuses a token whose key is not in a key set it could fetch", async () => {
    const foreign = await generateKeyPair("RS256");
    const token = await sign({}, { kid: "unknown-key" }, foreign.privateKey);
    await expect(verifierFor(jwksUrlOf(jwks)).verify(token)).rejects.toBeInstanceOf(UnauthorizedError);
  });
});
