/**
 * Metric names the handlers emit (CloudWatch EMF, namespace below). The CDK dashboard and alarms
 * import these same constants, and an infra test checks they match.
 */
export const METRICS_NAMESPACE = "ChatPipeline";

/** Powertools service name (the `service` dimension of every metric). */
export const SERVICE_NAME = "chat-pipeline";

export const Metric = {
  /** Accept path, request received → answered (ms). */
  AcceptLatency: "AcceptLatency",
  /** Time spent in each tier during accept (ms). */
  AcceptCacheTime: "AcceptCacheTime",
  AcceptQueueTime: "AcceptQueueTime",
  AcceptDatabaseTime: "AcceptDatabaseTime",
  AcceptFanoutTime: "AcceptFanoutTime",
  MessagesAccepted: "MessagesAccepted",
  IdempotentReplays: "IdempotentReplays",
  /** Accepted with the cache skipped (Redis down or its circuit open). */
  CacheSkipped: "CacheSkipped",
  /** SQS unavailable: committed synchronously to PostgreSQL instead. */
  QueueFallbacks: "QueueFallbacks",
  /** No durable tier available: answered 503. */
  AcceptUnavailable: "AcceptUnavailable",
  CacheHits: "CacheHits",
  CacheMisses: "CacheMisses",
  /** Accepts and deltas refused with 503 overloaded (this process too busy; runtime/admission.ts). */
  RequestsShed: "RequestsShed",
  /** A circuit breaker opened (dimension Tier). */
  BreakerOpened: "BreakerOpened",
  WebSocketDelivered: "WebSocketDelivered",
  WebSocketGone: "WebSocketGone",
  WebSocketFailed: "WebSocketFailed",
  /** Accepted → row in PostgreSQL (ms). */
  PersistLag: "PersistLag",
  MessagesPersisted: "MessagesPersisted",
  DuplicatesIgnored: "DuplicatesIgnored",
  PersistFailures: "PersistFailures",
  /** Created → row in ClickHouse (ms). */
  ArchiveLag: "ArchiveLag",
  RowsArchived: "RowsArchived",
  RowsPerInsert: "RowsPerInsert",
  ArchiveFailures: "ArchiveFailures",
  OutboxForwarded: "OutboxForwarded",
  /** Outbox entries that failed on their own in a relay run (retried later, then parked). */
  OutboxDeferred: "OutboxDeferred",
  /** Outbox entries parked for an operator (docs/reliability.md), as counted by each relay run. */
  OutboxParked: "OutboxParked",
  /** Persisted messages handed to the outbox (analytics queue or Redis unreachable): the relay's work. */
  OutboxHandoffs: "OutboxHandoffs",
  /** Messages and feedback changes of erased threads that were in flight, dropped by a consumer. */
  ErasedRowsDropped: "ErasedRowsDropped",
  /** Erasures a worker run has nothing more to do for (complete, or held by another worker). */
  ErasuresSettled: "ErasuresSettled",
  /** Erasures the outbox relay handed to the worker again (their record was lost). */
  ErasuresResumed: "ErasuresResumed",
} as const;

export type MetricName = (typeof Metric)[keyof typeof Metric];
