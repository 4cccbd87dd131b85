#!/usr/bin/env bash
# Runs inside LocalStack once it is ready: the persist, analytics and erasure queues with their DLQs, with the
# attributes the CDK app gives them in dev (lib/config/environments.ts): visibility timeout
# = 6 × the consumer's timeout + its batching window, maxReceiveCount, 4 days of retention (DLQs: 14).
# test/infra/localstack.test.ts fails when these numbers and the dev templates part ways.
# Used by the free-plan path, where the built-in local stack runs the handlers against LocalStack's
# SQS (it reuses these queues as they are).
set -euo pipefail

queue() {
  local name=$1 visibility=$2 max_receive=$3 retention=$4
  awslocal sqs create-queue --queue-name "$name-dlq" --attributes MessageRetentionPeriod=1209600 >/dev/null
  local dlq_arn
  dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/$name-dlq" \
    --attribute-names QueueArn --query Attributes.QueueArn --output text)
  awslocal sqs create-queue --queue-name "$name" --attributes "{
    \"VisibilityTimeout\": \"$visibility\",
    \"MessageRetentionPeriod\": \"$retention\",
    \"RedrivePolicy\": \"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$max_receive\\\"}\"
  }" >/dev/null
  echo "queue $name ready (visibility $visibility s, DLQ $name-dlq after $max_receive receives)"
}

#     name           visibility  maxReceiveCount  retention (s)
queue chat-persist   181         5                345600
queue chat-analytics 365         5                345600
queue chat-erasure   360         10               345600
