/**
 * The HTTP API: one route per entry of HTTP_FUNCTIONS (the `$default` entry catches the rest), a
 * throttled `$default` stage with JSON access logs, and the route functions. Authentication is
 * the functions' own (bearer JWT verified against the JWKS), so the routes have no authorizer.
 */
import { Duration } from "aws-cdk-lib";
import * as apigw from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { HTTP_FUNCTIONS, type HttpFunction } from "../../lambdas/handlers/catalog.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction } from "./chat-function.ts";
import {
  API_NEEDS,
  functionEnvironment,
  grantNeeds,
  type Need,
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

export interface HttpApiProps {
  /** @default HTTP_FUNCTIONS from lambdas/handlers/catalog.ts */
  readonly routes?: readonly HttpFunction[];
  /** Grants beyond the accept path's, by function id (e.g. the health check pings ClickHouse). @default none */
  readonly extraNeeds?: Readonly<Record<string, readonly Need[]>>;
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
    const extraNeeds = props.extraNeeds ?? {};
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
    for (const fnId of Object.keys(extraNeeds)) {
      problems.check(
        routes.some((r) => r.id === fnId),
        `extraNeeds names an unknown function "${fnId}"`,
      );
    }
    if (props.throttle !== undefined) {
      problems.check(
        props.throttle.rateLimit > 0 && props.throttle.burstLimit > 0,
        "throttle limits must be > 0",
      );
    }
    problems.throwIfAny(`props of ${this.node.path}`);

    this.api = new apigwv2.HttpApi(this, "Api", {
      apiName: `${props.runtime.appEnv}-chat-http`,
      description: "Chat pipeline: threads and messages",
      createDefaultStage: false,
    });
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
      grantNeeds(fn.function, [...API_NEEDS, ...(extraNeeds[route.id] ?? [])], props.resources);
      new apigwv2.HttpRoute(this, `${route.id}Route`, {
        httpApi: this.api,
        routeKey: parseRouteKey(route.routeKey),
        integration: new HttpLambdaIntegration(`${route.id}Integration`, fn.function, {
          payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
        }),
      });
      functions.set(route.id, fn);
    }
    this.functions = functions;
  }

  get url(): string {
    return this.stage.url;
  }
}
