/**
 * Every Lambda function of the system: its handler file and what triggers it. The CDK app and the
 * built-in local stack both read this table, so the routes served locally are the deployed ones.
 * (Paths only: importing this file loads no handler.)
 */
export interface HttpFunction {
  readonly id: string;
  readonly entry: string;
  /** API Gateway HTTP API route key. */
  readonly routeKey: string;
}

export interface WebSocketFunction {
  readonly id: string;
  readonly entry: string;
  /** API Gateway WebSocket route key (selected by `$request.body.action`). */
  readonly routeKey: string;
}

export const HTTP_FUNCTIONS: readonly HttpFunction[] = [
  { id: "CreateThread", entry: "lambdas/handlers/http/create-thread.ts", routeKey: "POST /api/threads" },
  { id: "ListThreads", entry: "lambdas/handlers/http/list-threads.ts", routeKey: "GET /api/threads" },
  { id: "GetThread", entry: "lambdas/handlers/http/get-thread.ts", routeKey: "GET /api/threads/{threadId}" },
  {
    id: "PostMessage",
    entry: "lambdas/handlers/http/post-message.ts",
    routeKey: "POST /api/threads/{threadId}/messages",
  },
  {
    id: "ListMessages",
    entry: "lambdas/handlers/http/list-messages.ts",
    routeKey: "GET /api/threads/{threadId}/messages",
  },
  {
    id: "GetMessage",
    entry: "lambdas/handlers/http/get-message.ts",
    routeKey: "GET /api/messages/{messageId}",
  },
  {
    id: "RecoverCache",
    entry: "lambdas/handlers/http/recover-cache.ts",
    routeKey: "POST /api/admin/recover-redis-cache",
  },
  { id: "GetHealth", entry: "lambdas/handlers/http/get-health.ts", routeKey: "GET /api/health" },
  { id: "NotFound", entry: "lambdas/handlers/http/not-found.ts", routeKey: "$default" },
];

export const WEBSOCKET_FUNCTIONS: readonly WebSocketFunction[] = [
  { id: "WsConnect", entry: "lambdas/handlers/ws/connect.ts", routeKey: "$connect" },
  { id: "WsDisconnect", entry: "lambdas/handlers/ws/disconnect.ts", routeKey: "$disconnect" },
  { id: "WsSubscribe", entry: "lambdas/handlers/ws/subscribe.ts", routeKey: "subscribe" },
  { id: "WsUnsubscribe", entry: "lambdas/handlers/ws/unsubscribe.ts", routeKey: "unsubscribe" },
  { id: "WsSendMessage", entry: "lambdas/handlers/ws/send-message.ts", routeKey: "sendMessage" },
  { id: "WsPing", entry: "lambdas/handlers/ws/ping.ts", routeKey: "ping" },
  { id: "WsDefault", entry: "lambdas/handlers/ws/default.ts", routeKey: "$default" },
];

export const CONSUMER_FUNCTIONS = {
  persist: { id: "PersistMessages", entry: "lambdas/handlers/sqs/persist-messages.ts" },
  analytics: { id: "ArchiveMessages", entry: "lambdas/handlers/sqs/archive-messages.ts" },
} as const;

export const SCHEDULED_FUNCTIONS = {
  outboxRelay: { id: "RelayOutbox", entry: "lambdas/handlers/scheduled/relay-outbox.ts" },
} as const;
