/**
 * What a browser and an unauthenticated caller meet at the HTTP API: CORS from the environment's
 * configuration, answered by API Gateway (no route may catch a preflight), and a JWT authorizer
 * with the functions' own issuer and audience on every route but the health check.
 */
import { describe, expect, it } from "vitest";
import { HTTP_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS } from "../../lib/shared/cors.ts";
import { environment, type Synthesized, synthesize } from "./support/synth.ts";
import { crossStackValue, type Json, referencedId, resources } from "./support/template-queries.ts";

const synthesized: Synthesized[] = [synthesize(environment("dev")), synthesize(environment("prod"))];

const httpApiOf = (s: Synthesized): [string, Json] => {
  const found = resources(s.app, "AWS::ApiGatewayV2::Api").find(
    ([, r]) => r.Properties?.ProtocolType === "HTTP",
  );
  if (found === undefined) throw new Error("no HTTP API");
  return found;
};

const httpRoutesOf = (s: Synthesized) => {
  const [apiId] = httpApiOf(s);
  return resources(s.app, "AWS::ApiGatewayV2::Route").filter(
    ([, r]) => referencedId(r.Properties?.ApiId) === apiId,
  );
};

describe.each(synthesized)("HTTP API ($config.name)", (s) => {
  const [, api] = httpApiOf(s);
  const routes = httpRoutesOf(s);
  const authorizers = resources(s.app, "AWS::ApiGatewayV2::Authorizer");

  it("answers CORS preflights for the configured origins, with the headers the API uses", () => {
    const cors = api.Properties?.CorsConfiguration;
    expect(cors.AllowOrigins).toEqual(s.config.api.corsAllowedOrigins);
    expect(cors.AllowHeaders.map((h: string) => h.toLowerCase()).sort()).toEqual(
      ["authorization", "content-type", "idempotency-key"].sort(),
    );
    expect(cors.AllowHeaders).toEqual([...CORS_ALLOW_HEADERS]);
    expect(cors.ExposeHeaders.map((h: string) => h.toLowerCase()).sort()).toEqual(
      ["idempotent-replayed", "retry-after", "server-timing"].sort(),
    );
    expect(cors.ExposeHeaders).toEqual([...CORS_EXPOSE_HEADERS]);
    // Every method of the catalog's routes, and only those.
    const methods = new Set(
      HTTP_FUNCTIONS.map((f) => f.routeKey.split(" ")[0]).filter((m) => m !== "$default"),
    );
    expect(cors.AllowMethods.sort()).toEqual([...methods].sort());
    expect(cors.AllowMethods).toEqual(expect.arrayContaining(["GET", "POST", "PUT", "DELETE"]));
    expect(cors.AllowCredentials).toBe(false);
    expect(cors.MaxAge).toBe(s.config.api.corsMaxAgeSeconds);
  });

  it("has no route that would catch a preflight: no $default, no ANY, no OPTIONS", () => {
    const keys = routes.map(([, r]) => String(r.Properties?.RouteKey));
    expect(keys).not.toContain("$default");
    expect(keys.filter((k) => k.startsWith("ANY ") || k.startsWith("OPTIONS "))).toEqual([]);
    // The catch-all still answers every other method of an unknown path with route_not_found.
    for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]) {
      expect(keys).toContain(`${method} /{proxy+}`);
    }
  });

  it("lets scripts on the allowed origins read Server-Timing (Timing-Allow-Origin)", () => {
    const integrations = resources(s.app, "AWS::ApiGatewayV2::Integration").filter(
      ([, r]) => referencedId(r.Properties?.ApiId) === httpApiOf(s)[0],
    );
    expect(integrations.length).toBe(HTTP_FUNCTIONS.length);
    for (const [, integration] of integrations) {
      for (const status of ["200", "201", "503"]) {
        expect(integration.Properties?.ResponseParameters?.[status]).toEqual({
          "overwrite:header.Timing-Allow-Origin": s.config.api.corsAllowedOrigins.join(", "),
        });
      }
    }
  });

  it("verifies tokens at the gateway with the functions' issuer and audience", () => {
    expect(authorizers).toHaveLength(1);
    const [[authorizerId, authorizer] = ["", undefined]] = authorizers;
    expect(authorizer?.Properties).toMatchObject({
      AuthorizerType: "JWT",
      IdentitySource: ["$request.header.Authorization"],
    });
    const jwt = authorizer?.Properties?.JwtConfiguration;
    // The same values the functions verify (JWT_ISSUER, JWT_AUDIENCE).
    const post = resources(s.app, "AWS::Lambda::Function").find(([id]) =>
      id.startsWith("HttpPostMessageFunction"),
    )?.[1];
    const vars = post?.Properties?.Environment?.Variables;
    expect(jwt.Issuer).toEqual(vars.JWT_ISSUER);
    expect(jwt.Audience).toEqual([vars.JWT_AUDIENCE]);
    // Cognito: the user pool's issuer and the app client as audience.
    const [[poolId] = [""]] = resources(s.data, "AWS::Cognito::UserPool");
    const [[clientId] = [""]] = resources(s.data, "AWS::Cognito::UserPoolClient");
    expect(JSON.stringify(jwt.Issuer)).toContain(`https://cognito-idp.`);
    const joined = (jwt.Issuer["Fn::Join"][1] as Json[]).map((p) => referencedId(crossStackValue(p, s.data)));
    expect(joined).toContain(poolId);
    expect(referencedId(crossStackValue(jwt.Audience[0], s.data))).toBe(clientId);

    for (const [, route] of routes) {
      const open = route.Properties?.RouteKey === "GET /api/health";
      expect(route.Properties?.AuthorizationType, route.Properties?.RouteKey).toBe(open ? "NONE" : "JWT");
      if (!open) expect(route.Properties?.AuthorizerId).toEqual({ Ref: authorizerId });
      else expect(route.Properties?.AuthorizerId).toBeUndefined();
    }
  });

  it("leaves only the health check open, for machines without a token", () => {
    expect(HTTP_FUNCTIONS.filter((f) => f.auth === "none").map((f) => f.routeKey)).toEqual([
      "GET /api/health",
    ]);
  });
});

describe("HTTP API with an external OIDC provider", () => {
  it("attaches a JWT authorizer with the provider's issuer and audience", () => {
    const s = synthesize({
      ...environment("dev"),
      auth: {
        kind: "oidc",
        issuer: "https://login.example.com",
        jwksUrl: "https://login.example.com/.well-known/jwks.json",
        audience: "chat-api",
        rolesClaim: "roles",
      },
    });
    s.app.hasResourceProperties("AWS::ApiGatewayV2::Authorizer", {
      AuthorizerType: "JWT",
      JwtConfiguration: { Issuer: "https://login.example.com", Audience: ["chat-api"] },
    });
  });

  it("attaches none when the environment turns the gateway's check off, and no CORS without origins", () => {
    const base = environment("dev");
    const s = synthesize({ ...base, api: { ...base.api, jwtAuthorizer: false, corsAllowedOrigins: [] } });
    expect(resources(s.app, "AWS::ApiGatewayV2::Authorizer")).toEqual([]);
    for (const [, route] of httpRoutesOf(s)) expect(route.Properties?.AuthorizationType).toBe("NONE");
    expect(httpApiOf(s)[1].Properties?.CorsConfiguration).toBeUndefined();
  });
});
