import { LOCAL_DEVELOPMENT_JWT_SECRET } from "../../lambdas/runtime/config.ts";

/** What the handlers see locally unless the environment or the caller says otherwise. */
export const LOCAL_DEFAULTS: Readonly<Record<string, string>> = {
  APP_ENV: "local",
  ACCEPT_MODE: "queued",
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/chat",
  REDIS_URL: "redis://127.0.0.1:6379",
  CLICKHOUSE_URL: "http://127.0.0.1:8123",
  CLICKHOUSE_DATABASE: "chat",
  CLICKHOUSE_USER: "default",
  CLICKHOUSE_PASSWORD: "",
  JWT_SECRET: LOCAL_DEVELOPMENT_JWT_SECRET,
  LOG_LEVEL: "WARN",
  // As dev in AWS: with 5 receives, the consumers ride out 5 + 10 + 20 + 40 = 75 s of outage.
  RETRY_BASE_DELAY_SECONDS: "5",
  RETRY_MAX_DELAY_SECONDS: "60",
  // The local functions time out within 30 s: writers in flight during a delete are done by then.
  ERASURE_SETTLE_SECONDS: "30",
  POWERTOOLS_METRICS_DISABLED: "true",
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "local",
  AWS_SECRET_ACCESS_KEY: "local",
  AWS_EC2_METADATA_DISABLED: "true",
};
