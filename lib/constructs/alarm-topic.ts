/**
 * Where the alarms of an environment go: one SNS topic with the configured email subscriptions,
 * plus further topics (a chat or paging integration) that every alarm also notifies. It lives in
 * the Network stack, the first one deployed, so the alarms of every stack can use it.
 */
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as actions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subscriptions from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

export interface AlarmTopicProps {
  /** Environment name, in the topic's display name. */
  readonly appEnv: string;
  /** Addresses subscribed to the topic (each must confirm). @default none */
  readonly emails?: readonly string[];
  /** Further topics every alarm notifies (at most 4: an alarm holds 5 actions per state). @default none */
  readonly topicArns?: readonly string[];
}

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$/;

export const validateAlarmTopic = (props: Omit<AlarmTopicProps, "appEnv">): readonly string[] => {
  const problems = new Problems();
  for (const email of props.emails ?? [])
    problems.check(EMAIL.test(email), `"${email}" is not an email address`);
  for (const arn of props.topicArns ?? [])
    problems.check(TOPIC_ARN.test(arn), `"${arn}" is not an SNS topic ARN`);
  problems.check((props.topicArns ?? []).length <= 4, "at most 4 further topics");
  return problems.list;
};

export class AlarmTopic extends Construct {
  readonly topic: sns.Topic;
  /** The topic and the further topics: what every alarm notifies. */
  readonly targets: readonly sns.ITopic[];

  constructor(scope: Construct, id: string, props: AlarmTopicProps) {
    super(scope, id);
    new Problems().add(validateAlarmTopic(props)).throwIfAny(`props of ${this.node.path}`);
    this.topic = new sns.Topic(this, "Topic", { displayName: `Chat pipeline ${props.appEnv} alarms` });
    for (const email of props.emails ?? [])
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    this.targets = [
      this.topic,
      ...(props.topicArns ?? []).map((arn, i) => sns.Topic.fromTopicArn(this, `Further${i}`, arn)),
    ];
  }
}

/** Sends `alarm`'s transitions to ALARM and back to OK to every target. */
export const notifyTargets = (alarm: cloudwatch.Alarm, targets: readonly sns.ITopic[]): void => {
  for (const target of targets) {
    alarm.addAlarmAction(new actions.SnsAction(target));
    alarm.addOkAction(new actions.SnsAction(target));
  }
};
