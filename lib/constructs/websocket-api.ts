/**
 * The WebSocket API: one route per entry of WEBSOCKET_FUNCTIONS (selected by
 * `$request.body.action`), a stage, and the route functions. `$connect` authenticates the token
 * in the query string inside the function. Functions that push frames (here and on the HTTP API)
 * call the @connections API of this stage, and only of this stage.
 */
import { Duration } from "aws-cdk-lib";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { WebSocketLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import { Construct } from "constructs";
import { WEBSOCKET_FUNCTIONS, type WebSocketFunction } from "../../lambdas/handlers/catalog.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction } from "./chat-function.ts";
import {
  functionEnvironment,
  grantNeeds,
  type Placement,
  type Resources,
  type RuntimeSettings,
} from "./runtime.ts";

/** Sizing shared by the HTTP and WebSocket route functions. */
export interface RouteFunctionSettings {
  /** @default 512 */
  readonly memoryMb?: number;
  /** At most 29 s (API Gateway's integration timeout). @default 10 */
  readonly timeoutSeconds?: number;
  /** @default 2 */
  readonly pgPoolMax?: number;
}

export const validateRouteFunctionSettings = (s: RouteFunctionSettings): readonly string[] =>
  new Problems()
    .integer("memoryMb", s.memoryMb ?? 512, 128, 10_240)
    .integer("timeoutSeconds", s.timeoutSeconds ?? 10, 1, 29)
    .integer("pgPoolMax", s.pgPoolMax ?? 2, 1, 100).list;

export interface Throttle {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

export interface WebSocketApiProps {
  /** @default WEBSOCKET_FUNCTIONS from lambdas/handlers/catalog.ts */
  readonly routes?: readonly WebSocketFunction[];
  /** @default "live" */
  readonly stageName?: string;
  /** @default API Gateway's account-level limits */
  readonly throttle?: Throttle;
  readonly functionSettings?: RouteFunctionSettings;
  readonly placement: Placement;
  readonly runtime: RuntimeSettings;
  readonly resources: Omit<Resources, "webSocketStage">;
}

export class WebSocketApi extends Construct {
  readonly api: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  /** Route functions by catalog id. */
  readonly functions: ReadonlyMap<string, ChatFunction>;

  constructor(scope: Construct, id: string, props: WebSocketApiProps) {
    super(scope, id);
    const routes = props.routes ?? WEBSOCKET_FUNCTIONS;
    const stageName = props.stageName ?? "live";
    const settings = props.functionSettings ?? {};
    const problems = new Problems();
    problems.add(validateRouteFunctionSettings(settings));
    problems.check(
      /^[A-Za-z0-9_-]{1,128}$/.test(stageName),
      `stageName "${stageName}" is not a valid stage name`,
    );
    problems.check(
      new Set(routes.map((r) => r.routeKey)).size === routes.length,
      "route keys must be unique",
    );
    problems.check(new Set(routes.map((r) => r.id)).size === routes.length, "function ids must be unique");
    if (props.throttle !== undefined) {
      problems.check(
        props.throttle.rateLimit > 0 && props.throttle.burstLimit > 0,
        "throttle limits must be > 0",
      );
    }
    problems.throwIfAny(`props of ${this.node.path}`);

    this.api = new apigwv2.WebSocketApi(this, "Api", {
      apiName: `${props.runtime.appEnv}-chat-websocket`,
      description: "Chat pipeline: subscriptions, live messages, sends",
      routeSelectionExpression: "$request.body.action",
    });
    this.stage = new apigwv2.WebSocketStage(this, "Stage", {
      webSocketApi: this.api,
      stageName,
      autoDeploy: true,
      ...(props.throttle !== undefined ? { throttle: props.throttle } : {}),
    });

    const resources: Resources = { ...props.resources, webSocketStage: this.stage };
    const environment = functionEnvironment(props.runtime, {
      pgPoolMax: settings.pgPoolMax ?? 2,
      webSocketApiEndpoint: this.stage.callbackUrl,
    });
    const functions = new Map<string, ChatFunction>();
    for (const route of routes) {
      const fn = new ChatFunction(this, route.id, {
        entry: route.entry,
        description: `WebSocket ${route.routeKey}`,
        memoryMb: settings.memoryMb ?? 512,
        timeout: Duration.seconds(settings.timeoutSeconds ?? 10),
        environment,
        ...props.placement,
      });
      grantNeeds(fn.function, route.needs, resources);
      this.api.addRoute(route.routeKey, {
        integration: new WebSocketLambdaIntegration(`${route.id}Integration`, fn.function),
      });
      functions.set(route.id, fn);
    }
    this.functions = functions;
  }

  /** wss:// URL clients connect to. */
  get url(): string {
    return this.stage.url;
  }

  /** https:// URL of the @connections API (WEBSOCKET_API_ENDPOINT). */
  get callbackUrl(): string {
    return this.stage.callbackUrl;
  }
}
