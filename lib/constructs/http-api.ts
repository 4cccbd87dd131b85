/**
 * The HTTP API: one route per entry of HTTP_FUNCTIONS, a throttled `$default` stage with JSON
 * access logs, and the route functions, each granted what its catalog entry needs.
 *
 * - CORS from the environment's allowed origins: API Gateway answers preflights itself. The
 *   catalog's catch-all (`$default`) is served as `<method> /{proxy+}` for every method but
 *   OPTIONS, because a `$default` route would also catch the preflights and answer them 404.
 * - A JWT authorizer (same issuer and audience as the functions) rejects requests without a valid
 *   token before any function runs; routes marked `auth: "none"` (the health check) stay open.
 *   The functions still verify the token themselves (and its roles); see docs/deploy.md.
 */
import { Duration, Token } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { HttpJwtAuthorizer } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { HTTP_FUNCTIONS, type HttpFunction } from "../../lambdas/handlers/catalog.ts";
import {
  CORS_ALLOW_HEADERS,
  CORS_ALLOW_METHODS,
  CORS_EXPOSE_HEADERS,
  validateOrigins,
} from "../shared/cors.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction } from "./chat-function.ts";
import {
  functionEnvironment,
  grantNeeds,
  type Placement,
  type Resources,
  type RuntimeSettings,
} from "./runtime.ts";
import { type RouteFunctionSettings, type Throttle, validateRouteFunctionSettings } from "./websocket-api.ts";

const METHODS = new Set<string>(Object.values(apigwv2.HttpMethod));

/** "POST /api/threads" → method and path; "$default" → the catch-all route. */
export const parseRouteKey = (routeKey: string): apigwv2.HttpRouteKey => {
  if (routeKey === "$default") return apigwv2.HttpRouteKey.DEFAULT;
  const match = /^([A-Z]+) (\/\S*)$/.exec(routeKey);
  const method = match?.[1];
  const path = match?.[2];
  if (method === undefined || path === undefined || !METHODS.has(method)) {
    throw new Error(`unsupported HTTP route key "${routeKey}"`);
  }
  return apigwv2.HttpRouteKey.with(path, method as apigwv2.HttpMethod);
};

/** The methods the catch-all serves: all but OPTIONS, which API Gateway answers (CORS preflight). */
export const CATCH_ALL_METHODS: readonly apigwv2.HttpMethod[] = Object.values(apigwv2.HttpMethod).filter(
  (m) => m !== apigwv2.HttpMethod.ANY && m !== apigwv2.HttpMethod.OPTIONS,
);

/** The route keys of a catalog entry: itself, or the catch-all's `<method> /{proxy+}` keys. */
export const routeKeysOf = (routeKey: string): apigwv2.HttpRouteKey[] =>
  routeKey === "$default"
    ? CATCH_ALL_METHODS.map((m) => apigwv2.HttpRouteKey.with("/{proxy+}", m))
    : [parseRouteKey(routeKey)];

/** Static response headers added to the functions' answers for these status codes. */
const MAPPED_STATUS_CODES = [
  "200",
  "201",
  "400",
  "401",
  "403",
  "404",
  "409",
  "413",
  "422",
  "429",
  "500",
  "503",
];

export interface CorsSettings {
  /** Origins allowed to call the API from a browser ("*" alone for any). */
  readonly allowedOrigins: readonly string[];
  /** How long a browser may cache a preflight answer. @default Duration.minutes(10) */
  readonly maxAge?: Duration;
}

export interface HttpApiProps {
  /** @default HTTP_FUNCTIONS from lambdas/handlers/catalog.ts */
  readonly routes?: readonly HttpFunction[];
  /** @default no CORS: no browser on another origin can call the API */
  readonly cors?: CorsSettings;
  /** Verify bearer tokens at the gateway (all routes but those with auth "none"). @default none */
  readonly jwtAuthorizer?: { readonly issuer: string; readonly audience: string };
  /** @default API Gateway's account-level limits */
  readonly throttle?: Throttle;
  readonly functionSettings?: RouteFunctionSettings;
  readonly placement: Placement;
  readonly runtime: RuntimeSettings;
  readonly resources: Resources;
  /** https:// URL of the WebSocket stage's @connections API (fan-out after an accept). */
  readonly webSocketApiEndpoint: string;
}

export class HttpApi extends Construct {
  readonly api: apigwv2.HttpApi;
  readonly stage: apigwv2.HttpStage;
  readonly functions: ReadonlyMap<string, ChatFunction>;

  constructor(scope: Construct, id: string, props: HttpApiProps) {
    super(scope, id);
    const routes = props.routes ?? HTTP_FUNCTIONS;
    const settings = props.functionSettings ?? {};
    const problems = new Problems();
    problems.add(validateRouteFunctionSettings(settings));
    problems.check(
      new Set(routes.map((r) => r.routeKey)).size === routes.length,
      "route keys must be unique",
    );
    problems.check(new Set(routes.map((r) => r.id)).size === routes.length, "function ids must be unique");
    for (const route of routes) {
      try {
        parseRouteKey(route.routeKey);
      } catch (error) {
        problems.check(false, (error as Error).message);
      }
    }
    if (props.cors !== undefined) {
      // An origin known only at deploy time (the web client's distribution) is checked there.
      const known = props.cors.allowedOrigins.filter((o) => !Token.isUnresolved(o));
      problems.add(validateOrigins(known).map((m) => `cors: ${m}`));
      const maxAge = props.cors.maxAge?.toSeconds() ?? 600;
      problems.integer("cors.maxAge (s)", maxAge, 0, 86_400);
    }
    if (props.throttle !== undefined) {
      problems.check(
        props.throttle.rateLimit > 0 && props.throttle.burstLimit > 0,
        "throttle limits must be > 0",
      );
    }
    problems.throwIfAny(`props of ${this.node.path}`);

    const cors = props.cors !== undefined && props.cors.allowedOrigins.length > 0 ? props.cors : undefined;
    this.api = new apigwv2.HttpApi(this, "Api", {
      apiName: `${props.runtime.appEnv}-chat-http`,
      description: "Chat pipeline: threads and messages",
      createDefaultStage: false,
      ...(cors !== undefined
        ? {
            corsPreflight: {
              allowOrigins: [...cors.allowedOrigins],
              allowHeaders: [...CORS_ALLOW_HEADERS],
              allowMethods: CORS_ALLOW_METHODS.map((m) => m as apigwv2.CorsHttpMethod),
              exposeHeaders: [...CORS_EXPOSE_HEADERS],
              allowCredentials: false,
              maxAge: cors.maxAge ?? Duration.minutes(10),
            },
          }
        : {}),
    });
    const authorizer =
      props.jwtAuthorizer !== undefined
        ? new HttpJwtAuthorizer("JwtAuthorizer", props.jwtAuthorizer.issuer, {
            authorizerName: `${props.runtime.appEnv}-chat-jwt`,
            jwtAudience: [props.jwtAuthorizer.audience],
            identitySource: ["$request.header.Authorization"],
          })
        : undefined;
    const accessLogs = new logs.LogGroup(this, "AccessLogs", {
      retention: props.placement.logRetention,
      removalPolicy: props.placement.logRemovalPolicy,
    });
    this.stage = new apigwv2.HttpStage(this, "Stage", {
      httpApi: this.api,
      stageName: "$default",
      autoDeploy: true,
      ...(props.throttle !== undefined ? { throttle: props.throttle } : {}),
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        format: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: "$context.requestId",
            ip: "$context.identity.sourceIp",
            time: "$context.requestTimeEpoch",
            routeKey: "$context.routeKey",
            status: "$context.status",
            responseLength: "$context.responseLength",
            latencyMs: "$context.responseLatency",
            integrationLatencyMs: "$context.integrationLatency",
            integrationError: "$context.integrationErrorMessage",
            // Why the JWT authorizer refused a request (401 without a function run).
            authorizerError: "$context.authorizer.error",
          }),
        ),
      },
    });

    const environment = functionEnvironment(props.runtime, {
      pgPoolMax: settings.pgPoolMax ?? 2,
      webSocketApiEndpoint: props.webSocketApiEndpoint,
    });
    const functions = new Map<string, ChatFunction>();
    for (const route of routes) {
      const fn = new ChatFunction(this, route.id, {
        entry: route.entry,
        description: route.routeKey,
        memoryMb: settings.memoryMb ?? 512,
        timeout: Duration.seconds(settings.timeoutSeconds ?? 10),
        environment,
        ...props.placement,
      });
      grantNeeds(fn.function, route.needs, props.resources);
      const integration = new HttpLambdaIntegration(`${route.id}Integration`, fn.function, {
        payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
      });
      const keys = routeKeysOf(route.routeKey);
      for (const routeKey of keys) {
        const suffix = keys.length === 1 ? "" : (routeKey.method ?? "");
        new apigwv2.HttpRoute(this, `${route.id}${suffix}Route`, {
          httpApi: this.api,
          routeKey,
          integration,
          ...(authorizer !== undefined && route.auth !== "none" ? { authorizer } : {}),
        });
      }
      functions.set(route.id, fn);
    }
    this.functions = functions;

    // Browsers expose Server-Timing to another origin's scripts only with Timing-Allow-Origin.
    if (cors !== undefined) {
      const value = cors.allowedOrigins.join(", ");
      for (const child of this.node.findAll()) {
        if (child instanceof apigwv2.CfnIntegration) {
          child.addPropertyOverride(
            "ResponseParameters",
            Object.fromEntries(
              MAPPED_STATUS_CODES.map((code) => [code, { "overwrite:header.Timing-Allow-Origin": value }]),
            ),
          );
        }
      }
    }
  }

  get url(): string {
    return this.stage.url;
  }
}
