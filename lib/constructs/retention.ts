/**
 * Retention (SCHEDULED_FUNCTIONS.retention), where the environment sets it: every few hours the
 * function starts an erasure of the threads whose newest message is older than
 * MESSAGE_RETENTION_DAYS; the erasure worker carries it out, tier by tier
 * (docs/erasure.md). The schedule's event time is the clock the cutoff is measured from.
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

export interface RetentionProps {
  /** Hours between runs (1–24). */
  readonly everyHours: number;
  readonly placement: Placement;
  /** With `messageRetentionDays` set. */
  readonly runtime: RuntimeSettings;
  readonly resources: Resources;
}

export class Retention extends Construct {
  readonly function: ChatFunction;
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: RetentionProps) {
    super(scope, id);
    const days = props.runtime.messageRetentionDays;
    new Problems()
      .integer("everyHours", props.everyHours, 1, 24)
      .check(days !== undefined, "runtime.messageRetentionDays must be set where retention is deployed")
      .throwIfAny(`props of ${this.node.path}`);
    const spec = SCHEDULED_FUNCTIONS.retention;
    this.function = new ChatFunction(this, spec.id, {
      entry: spec.entry,
      description: `Retention: erases threads idle for ${days} days (every ${props.everyHours} h)`,
      memoryMb: 256,
      timeout: Duration.seconds(30),
      environment: functionEnvironment(props.runtime, { pgPoolMax: 1 }),
      ...props.placement,
    });
    // It finds the expired threads and hands the erasure to the worker.
    grantNeeds(this.function.function, ["database", "redis", "sendToErasureQueue"], props.resources);
    this.rule = new events.Rule(this, "Schedule", {
      description: "Chat pipeline retention",
      schedule: events.Schedule.rate(Duration.hours(props.everyHours)),
      targets: [new targets.LambdaFunction(this.function.function, { retryAttempts: 2 })],
    });
  }
}
