/**
 * `npm start`: runs the whole system locally. Ctrl-C stops it. With `--json`, prints one JSON line
 * with the endpoints (for scripts that drive it). With `--demo-agent`, also runs the demo agent
 * (demo-agent.ts): it answers the threads whose metadata says `"agent": "demo"`.
 */
import { parseArgs } from "node:util";
import { DemoAgent, demoAgentToken } from "./demo-agent.ts";
import { startLocalStack } from "./stack.ts";
import { signDevToken } from "./tokens.ts";

const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    "http-port": { type: "string" },
    "ws-port": { type: "string" },
    "sqs-port": { type: "string" },
    "demo-agent": { type: "boolean", default: false },
  },
});

const port = (value: string | undefined, fallback: number): number =>
  value === undefined ? fallback : Number(value);

const stack = await startLocalStack({
  httpPort: port(values["http-port"] ?? process.env.HTTP_PORT, 3000),
  wsPort: port(values["ws-port"] ?? process.env.WS_PORT, 3001),
  sqsPort: port(values["sqs-port"] ?? process.env.SQS_PORT, 9324),
  // LocalStack (or any SQS endpoint) instead of the embedded one: see localstack/README.md.
  ...(process.env.LOCAL_SQS_ENDPOINT ? { externalSqsEndpoint: process.env.LOCAL_SQS_ENDPOINT } : {}),
  onError: (source, error) => console.error(`[${source}]`, error instanceof Error ? error.message : error),
});

const secret = stack.env.JWT_SECRET as string;
const token = await signDevToken({ secret, sub: "dev-user" });

// The demo agent talks to the stack like any external agent: over HTTP and WebSocket, with a
// service token of its own.
const agent = values["demo-agent"]
  ? new DemoAgent({
      apiUrl: `${stack.httpUrl}/api`,
      wsUrl: stack.wsUrl,
      token: () => demoAgentToken(secret),
      // Under --json, stdout is the one JSON line.
      log: (line) => (values.json ? console.error : console.log)(`[demo-agent] ${line}`),
    })
  : undefined;
await agent?.start();

if (values.json) {
  console.log(
    JSON.stringify({
      httpUrl: stack.httpUrl,
      webUrl: stack.webUrl,
      wsUrl: stack.wsUrl,
      managementEndpoint: stack.managementEndpoint,
      sqsEndpoint: stack.sqsEndpoint,
      queues: stack.queues,
      mode: stack.env.ACCEPT_MODE,
      demoAgent: agent !== undefined,
    }),
  );
} else {
  console.log(`
Chat message pipeline — local stack (${stack.env.ACCEPT_MODE} mode)

  Web client      ${stack.webUrl ?? "not served"}/   (sign in with any user name)
  HTTP API        ${stack.httpUrl}/api   (browsers on ${stack.corsAllowedOrigins.join(", ") || "no other origin"})
  WebSocket API   ${stack.wsUrl}?token=<JWT>
  @connections    ${stack.managementEndpoint}/@connections/<connectionId>
  SQS endpoint    ${stack.sqsEndpoint}
    persist       ${stack.queues.persist.url}   (DLQ ${stack.queues.persist.dlqUrl})
    analytics     ${stack.queues.analytics.url}   (DLQ ${stack.queues.analytics.dlqUrl})
    erasure       ${stack.queues.erasure.url}   (DLQ ${stack.queues.erasure.dlqUrl})
  Redis           ${stack.env.REDIS_URL}
  PostgreSQL      ${stack.env.DATABASE_URL}
  ClickHouse      ${stack.env.CLICKHOUSE_URL} (database ${stack.env.CLICKHOUSE_DATABASE})

A development token for user "dev-user" (12 h):
  ${token}

Try:
  TOKEN=${token.slice(0, 16)}...   # the token above
  curl -s -X POST ${stack.httpUrl}/api/threads -H "Authorization: Bearer $TOKEN" -d '{"title":"hello"}'
More tokens: npm run token -- --sub alice [--roles admin,service]
${
  agent !== undefined
    ? `Demo agent: answers threads created with {"metadata":{"agent":"demo"}}, streaming word by word
  (service principal "demo-agent"; README, "Streaming replies and the demo agent").`
    : "A demo agent that streams replies: npm start -- --demo-agent"
}
Ctrl-C stops everything.
`);
}

let stopping = false;
const shutdown = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  if (!values.json) console.log("\nstopping…");
  await agent?.stop();
  await stack.stop();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
