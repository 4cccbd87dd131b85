/**
 * The outbox relay of SCHEDULED_FUNCTIONS, run every minute by EventBridge: forwards messages that
 * were committed synchronously (SQS-down fallback, rollback mode) from PostgreSQL to the
 * analytics queue.
 */
import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import { Construct } from "constructs";
import { SCHEDULED_FUNCTIONS } from "../../lambdas/handlers/catalog.ts";
import { Problems } from "../shared/problems.ts";
import { ChatFunction } from "./chat-function.ts";
import {
  functionEnvironment,
  grantNeeds,
  type Placement,
  type Resources,
  type RuntimeSettings,
} from "./runtime.ts";

export interface OutboxRelayProps {
  /** Below the schedule's minute, so runs do not overlap. @default 50 */
  readonly timeoutSeconds?: number;
  /** @default 256 */
  readonly memoryMb?: number;
  readonly placement: Placement;
  readonly runtime: RuntimeSettings;
  readonly resources: Resources;
}

export class OutboxRelay extends Construct {
  readonly function: ChatFunction;
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: OutboxRelayProps) {
    super(scope, id);
    const timeoutSeconds = props.timeoutSeconds ?? 50;
    new Problems()
      .integer("timeoutSeconds", timeoutSeconds, 1, 59)
      .integer("memoryMb", props.memoryMb ?? 256, 128, 10_240)
      .throwIfAny(`props of ${this.node.path}`);

    const spec = SCHEDULED_FUNCTIONS.outboxRelay;
    this.function = new ChatFunction(this, spec.id, {
      entry: spec.entry,
      description: "Outbox relay (every minute)",
      memoryMb: props.memoryMb ?? 256,
      timeout: Duration.seconds(timeoutSeconds),
      environment: functionEnvironment(props.runtime, { pgPoolMax: 1 }),
      ...props.placement,
    });
    grantNeeds(this.function.function, ["database", "sendToAnalyticsQueue"], props.resources);
    this.rule = new events.Rule(this, "Schedule", {
      description: "Chat pipeline outbox relay",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.function.function, { retryAttempts: 0 })],
    });
  }
}
