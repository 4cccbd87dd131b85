/** The runtime configuration refuses what would be unsafe to start with, naming each problem. */
import { describe, expect, it } from "vitest";
import { ConfigError, LOCAL_DEVELOPMENT_JWT_SECRET, parseConfig } from "../../lambdas/runtime/config.ts";

const base = {
  PERSIST_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/persist",
  ANALYTICS_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/1/analytics",
  DATABASE_URL: "postgres://app@db:5432/chat",
};
const jwks = {
  JWT_JWKS_URL: "https://issuer.example.com/.well-known/jwks.json",
  JWT_ISSUER: "https://issuer.example.com",
};

const refusal = (env: Record<string, string>): string => {
  try {
    parseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the configuration was accepted");
};

describe("the runtime configuration", () => {
  it("accepts the local secret locally and in tests", () => {
    for (const APP_ENV of ["local", "test"]) {
      expect(parseConfig({ ...base, APP_ENV, JWT_SECRET: LOCAL_DEVELOPMENT_JWT_SECRET }).APP_ENV).toBe(
        APP_ENV,
      );
    }
  });

  it("refuses the public local secret in any other environment", () => {
    for (const APP_ENV of ["dev", "prod", "staging"]) {
      expect(refusal({ ...base, APP_ENV, JWT_SECRET: LOCAL_DEVELOPMENT_JWT_SECRET })).toMatch(
        /JWT_SECRET: is the public local development secret/,
      );
    }
  });

  it("refuses a JWT secret and a JWKS URL together", () => {
    expect(refusal({ ...base, ...jwks, JWT_SECRET: "x".repeat(40) })).toMatch(/not both/);
  });

  it("refuses a JWKS provider without an audience in prod, and accepts it with one", () => {
    expect(refusal({ ...base, ...jwks, APP_ENV: "prod" })).toMatch(/JWT_AUDIENCE: is required in prod/);
    expect(parseConfig({ ...base, ...jwks, APP_ENV: "prod", JWT_AUDIENCE: "chat-api" }).JWT_AUDIENCE).toBe(
      "chat-api",
    );
    expect(parseConfig({ ...base, ...jwks, APP_ENV: "dev" }).JWT_AUDIENCE).toBeUndefined();
  });

  it("names every problem at once", () => {
    const message = refusal({ ...base, APP_ENV: "prod", JWT_SECRET: LOCAL_DEVELOPMENT_JWT_SECRET, ...jwks });
    expect(message).toMatch(/public local development secret/);
    expect(message).toMatch(/not both/);
    expect(message).toMatch(/JWT_AUDIENCE/);
    const missing = refusal({ JWT_SECRET: "x".repeat(40) });
    for (const name of ["PERSIST_QUEUE_URL", "ANALYTICS_QUEUE_URL"]) expect(missing).toContain(name);
  });
});
