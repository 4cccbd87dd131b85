/**
 * Every Lambda function of the system: its handler file and what triggers it. The CDK app and the
 * built-in local stack both read this table, so the routes served locally are the deployed ones.
 * (Paths only: importing this file loads no handler.)
 */
/**
 * What a function reaches, so what it is granted (lib/constructs/runtime.ts): the secrets of the
 * tiers its services connect to at cold start, and the queue and @connections calls on its path.
 * The message service opens Redis and PostgreSQL together, so every route that uses it needs both.
 */
export type FunctionNeed =
  | "redis"
  | "database"
  | "clickhouse"
  | "sendToPersistQueue"
  | "readPersistQueue"
  | "manageConnections"
  | "sendToAnalyticsQueue"
  | "sendToErasureQueue";

export interface HttpFunction {
  readonly id: string;
  readonly entry: string;
  /** API Gateway HTTP API route key. */
  readonly routeKey: string;
  readonly needs: readonly FunctionNeed[];
  /** `none`: callers need no token (the gateway's JWT authorizer is not attached). @default "jwt" */
  readonly auth?: "jwt" | "none";
  /**
   * Work per message (an accept, a delta): shed first when the process is overloaded — by the
   * handler (`shed: true` in its httpHandler options) and, locally, by the gateway before it
   * invokes the function (runtime/admission.ts).
   */
  readonly shed?: boolean;
}

export interface WebSocketFunction {
  readonly id: string;
  readonly entry: string;
  /** API Gateway WebSocket route key (selected by `$request.body.action`). */
  readonly routeKey: string;
  readonly needs: readonly FunctionNeed[];
}

const STORES: readonly FunctionNeed[] = ["redis", "database"];
/** The accept path: stores, the persist queue and the fan-out. */
const ACCEPT: readonly FunctionNeed[] = [...STORES, "sendToPersistQueue", "manageConnections"];
/** Streamed replies: deltas to the subscribers, final messages (and idle checks) to the persist queue. */
const STREAM: readonly FunctionNeed[] = ACCEPT;
/** WebSocket routes that answer over @connections. */
const WS_REPLY: readonly FunctionNeed[] = [...STORES, "manageConnections"];

export const HTTP_FUNCTIONS: readonly HttpFunction[] = [
  {
    id: "CreateThread",
    entry: "lambdas/handlers/http/create-thread.ts",
    routeKey: "POST /api/threads",
    needs: STORES,
  },
  {
    id: "ListThreads",
    entry: "lambdas/handlers/http/list-threads.ts",
    routeKey: "GET /api/threads",
    needs: STORES,
  },
  {
    id: "GetThread",
    entry: "lambdas/handlers/http/get-thread.ts",
    routeKey: "GET /api/threads/{threadId}",
    needs: STORES,
  },
  {
    // Subscribers are told the thread changed.
    id: "UpdateThread",
    entry: "lambdas/handlers/http/update-thread.ts",
    routeKey: "PATCH /api/threads/{threadId}",
    needs: WS_REPLY,
  },
  {
    id: "ExportThread",
    entry: "lambdas/handlers/http/export-thread.ts",
    routeKey: "GET /api/threads/{threadId}/export",
    needs: STORES,
  },
  {
    // Subscribers are told the thread was deleted; the erasure is handed to its worker.
    id: "DeleteThread",
    entry: "lambdas/handlers/http/delete-thread.ts",
    routeKey: "DELETE /api/threads/{threadId}",
    needs: [...WS_REPLY, "sendToErasureQueue"],
  },
  {
    id: "PostMessage",
    entry: "lambdas/handlers/http/post-message.ts",
    routeKey: "POST /api/threads/{threadId}/messages",
    needs: ACCEPT,
    shed: true,
  },
  {
    id: "ListMessages",
    entry: "lambdas/handlers/http/list-messages.ts",
    routeKey: "GET /api/threads/{threadId}/messages",
    needs: STORES,
  },
  {
    id: "GetMessage",
    entry: "lambdas/handlers/http/get-message.ts",
    routeKey: "GET /api/messages/{messageId}",
    needs: STORES,
  },
  {
    id: "AppendDelta",
    entry: "lambdas/handlers/http/append-delta.ts",
    routeKey: "POST /api/messages/{messageId}/deltas",
    needs: STREAM,
    shed: true,
  },
  {
    id: "CompleteMessage",
    entry: "lambdas/handlers/http/complete-message.ts",
    routeKey: "POST /api/messages/{messageId}/complete",
    needs: STREAM,
  },
  {
    id: "CancelMessage",
    entry: "lambdas/handlers/http/cancel-message.ts",
    routeKey: "POST /api/messages/{messageId}/cancel",
    needs: STREAM,
  },
  {
    id: "RecoverCache",
    entry: "lambdas/handlers/http/recover-cache.ts",
    routeKey: "POST /api/admin/recover-redis-cache",
    needs: STORES,
  },
  {
    // Load balancers and uptime monitors call it without a token; tier details are for admins.
    id: "GetHealth",
    entry: "lambdas/handlers/http/get-health.ts",
    routeKey: "GET /api/health",
    needs: [...STORES, "clickhouse", "readPersistQueue"],
    auth: "none",
  },
  { id: "NotFound", entry: "lambdas/handlers/http/not-found.ts", routeKey: "$default", needs: [] },
  {
    // The reply is looked up like GET /api/messages/{id}; each change goes on to ClickHouse.
    id: "PutFeedback",
    entry: "lambdas/handlers/http/put-feedback.ts",
    routeKey: "PUT /api/messages/{messageId}/feedback",
    needs: [...STORES, "sendToAnalyticsQueue"],
  },
  {
    id: "DeleteFeedback",
    entry: "lambdas/handlers/http/delete-feedback.ts",
    routeKey: "DELETE /api/messages/{messageId}/feedback",
    needs: [...STORES, "sendToAnalyticsQueue"],
  },
  {
    id: "GetThreadUsage",
    entry: "lambdas/handlers/http/get-thread-usage.ts",
    routeKey: "GET /api/threads/{threadId}/usage",
    needs: STORES,
  },
  {
    id: "EraseUser",
    entry: "lambdas/handlers/http/erase-user.ts",
    routeKey: "DELETE /api/admin/users/{userId}",
    needs: [...STORES, "sendToErasureQueue"],
  },
  {
    id: "GetErasure",
    entry: "lambdas/handlers/http/get-erasure.ts",
    routeKey: "GET /api/admin/erasures/{erasureId}",
    needs: STORES,
  },
  {
    id: "GetAdminAnalytics",
    entry: "lambdas/handlers/http/get-admin-analytics.ts",
    routeKey: "GET /api/admin/analytics",
    needs: ["clickhouse"],
  },
];

export const WEBSOCKET_FUNCTIONS: readonly WebSocketFunction[] = [
  { id: "WsConnect", entry: "lambdas/handlers/ws/connect.ts", routeKey: "$connect", needs: STORES },
  { id: "WsDisconnect", entry: "lambdas/handlers/ws/disconnect.ts", routeKey: "$disconnect", needs: STORES },
  { id: "WsSubscribe", entry: "lambdas/handlers/ws/subscribe.ts", routeKey: "subscribe", needs: WS_REPLY },
  {
    id: "WsUnsubscribe",
    entry: "lambdas/handlers/ws/unsubscribe.ts",
    routeKey: "unsubscribe",
    needs: WS_REPLY,
  },
  {
    id: "WsSendMessage",
    entry: "lambdas/handlers/ws/send-message.ts",
    routeKey: "sendMessage",
    needs: ACCEPT,
  },
  {
    id: "WsAppendDelta",
    entry: "lambdas/handlers/ws/append-delta.ts",
    routeKey: "appendDelta",
    needs: STREAM,
  },
  { id: "WsPing", entry: "lambdas/handlers/ws/ping.ts", routeKey: "ping", needs: WS_REPLY },
  { id: "WsDefault", entry: "lambdas/handlers/ws/default.ts", routeKey: "$default", needs: WS_REPLY },
];

export const CONSUMER_FUNCTIONS = {
  persist: { id: "PersistMessages", entry: "lambdas/handlers/sqs/persist-messages.ts" },
  analytics: { id: "ArchiveMessages", entry: "lambdas/handlers/sqs/archive-messages.ts" },
  /** The erasure worker: the steps of an erasure after PostgreSQL's (docs/erasure.md). */
  erasure: { id: "RunErasures", entry: "lambdas/handlers/sqs/run-erasures.ts" },
} as const;

export const SCHEDULED_FUNCTIONS = {
  outboxRelay: { id: "RelayOutbox", entry: "lambdas/handlers/scheduled/relay-outbox.ts" },
  /** Only where MESSAGE_RETENTION_DAYS is set. */
  retention: { id: "ApplyRetention", entry: "lambdas/handlers/scheduled/apply-retention.ts" },
} as const;
