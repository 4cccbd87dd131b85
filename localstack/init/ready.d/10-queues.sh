#!/usr/bin/env bash
# Runs inside LocalStack once it is ready: the persist and analytics queues with their DLQs, as the
# CDK app defines them (visibility timeouts, maxReceiveCount). Used by the free-plan path, where the
# built-in local stack runs the handlers against LocalStack's SQS.
set -euo pipefail

queue() {
  local name=$1 visibility=$2 max_receive=$3
  awslocal sqs create-queue --queue-name "$name-dlq" --attributes MessageRetentionPeriod=1209600 >/dev/null
  local dlq_arn
  dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/$name-dlq" \
    --attribute-names QueueArn --query Attributes.QueueArn --output text)
  awslocal sqs create-queue --queue-name "$name" --attributes "{
    \"VisibilityTimeout\": \"$visibility\",
    \"RedrivePolicy\": \"{\\\"deadLetterTargetArn\\\":\\\"$dlq_arn\\\",\\\"maxReceiveCount\\\":\\\"$max_receive\\\"}\"
  }" >/dev/null
  echo "queue $name ready (DLQ $name-dlq, maxReceiveCount $max_receive)"
}

queue chat-persist 30 5
queue chat-analytics 60 5
