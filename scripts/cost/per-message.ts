/**
 * What a million accepted messages cost on AWS, line by line, computed from an environment's
 * synthesized templates (which functions, their memory and architecture, the queues' batch sizes,
 * the cache, the database, the egress and the endpoints), the prices file (prices.json) and the
 * workload assumptions of usage.json — overridden by the values the benchmark measured
 * (docs/performance/usage.json) where it has them.
 *
 * One message: an HTTP POST to the accept function, which stores it in the cache, sends it to the
 * persist queue and pushes it to the thread's subscribers (PostToConnection); the persist consumer
 * writes batches to PostgreSQL and forwards them to the analytics queue; the analytics consumer
 * inserts them into ClickHouse; clients read history (`readsPerMessage`). The idle cost per month
 * (idle-cost.ts) is reported beside it, unchanged.
 *
 * Left out: free tiers; WebSocket connection time (a price per connection-hour is given instead,
 * since it follows how long clients stay connected, not the messages); the Lambda pollers' empty
 * ReceiveMessage calls on idle queues; CloudWatch Logs ingestion and metrics; JWKS fetches;
 * retries and the outbox lane; data transfer out to the internet; ClickHouse beyond the assumed
 * price per million rows.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { idleCost, type PriceList, pricing, REPO_ROOT, type Templates, total } from "./idle-cost.ts";

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

export const USAGE_FILE = join(REPO_ROOT, "scripts", "cost", "usage.json");
export const MEASURED_FILE = join(REPO_ROOT, "docs", "performance", "usage.json");

export const USAGE_KEYS = [
  "messageBytes",
  "subscribersPerThread",
  "readsPerMessage",
  "readResponseKb",
  "acceptFunctionMs",
  "readFunctionMs",
  "redisCommandsPerAccept",
  "redisKbPerAccept",
  "redisEcpuPerCommand",
  "redisCommandsPerRead",
  "redisKbPerRead",
  "redisCommandsPerPersistBatch",
  "cacheKbPerMessage",
  "cacheHoursPerMessage",
  "acceptSendBatchEntries",
  "persistMessagesPerBatch",
  "analyticsRowsPerInsert",
  "persistConsumerMsPerBatch",
  "analyticsConsumerMsPerBatch",
  "postgresTransactionsPerMessage",
  "acuPer1000MessagesPerSecond",
  "natBytesPerSqsRequest",
  "natBytesPerPostToConnection",
  "natBytesPerClickHouseRow",
  "clickhouseUsdPerMillionRows",
] as const;
export type UsageKey = (typeof USAGE_KEYS)[number];

export interface Usage {
  readonly values: Readonly<Record<UsageKey, number>>;
  /** The values taken from the benchmark's file, each with the run it comes from. */
  readonly measured: Readonly<Partial<Record<UsageKey, string>>>;
}

/** docs/performance/usage.json field → usage key (any field may be missing). */
const MEASURED_FIELDS: readonly [(m: Json) => unknown, UsageKey][] = [
  [(m) => m.acceptFunctionMs, "acceptFunctionMs"],
  [(m) => m.persistMessagesPerBatch, "persistMessagesPerBatch"],
  [(m) => m.analyticsRowsPerInsert, "analyticsRowsPerInsert"],
  [(m) => m.postgresTransactionsPerMessage, "postgresTransactionsPerMessage"],
  [(m) => m.consumerMsPerBatch?.persist, "persistConsumerMsPerBatch"],
  [(m) => m.consumerMsPerBatch?.analytics, "analyticsConsumerMsPerBatch"],
];

/** The assumptions of `defaultsFile`, with the values `measuredFile` has (when it exists) in their place. */
export const loadUsage = (defaultsFile = USAGE_FILE, measuredFile = MEASURED_FILE): Usage => {
  const defaults = JSON.parse(readFileSync(defaultsFile, "utf8")) as {
    values: Record<string, { value: number; comment: string }>;
  };
  const values = {} as Record<UsageKey, number>;
  for (const key of USAGE_KEYS) {
    const v = defaults.values[key]?.value;
    if (typeof v !== "number") throw new Error(`${defaultsFile} has no value "${key}"`);
    values[key] = v;
  }
  const measured: Partial<Record<UsageKey, string>> = {};
  if (existsSync(measuredFile)) {
    const m = JSON.parse(readFileSync(measuredFile, "utf8")) as Json;
    const run = [m?.date, m?.source].filter((s) => typeof s === "string").join(", ") || "undated run";
    for (const [read, key] of MEASURED_FIELDS) {
      const v = read(m ?? {});
      if (typeof v === "number" && Number.isFinite(v) && v > 0) {
        values[key] = v;
        measured[key] = run;
      }
    }
  }
  return { values, measured };
};

export interface PerMessageLine {
  readonly item: string;
  /** How many per million accepted messages, in `unit`s. */
  readonly quantity: number;
  readonly unit: string;
  /** The unit price used, as shown. */
  readonly price: string;
  readonly usdPerMillion: number;
}

export interface PerMessageCost {
  readonly lines: readonly PerMessageLine[];
  readonly totalPerMillion: number;
  /** WebSocket connection time, per connection-hour (not in the total). */
  readonly usdPerConnectionHour: number;
  /** What the templates decided that has no line (or why a line is what it is). */
  readonly notes: readonly string[];
  readonly idleUsdPerMonth: number;
}

const MILLION = 1_000_000;
const GB = 1024 ** 3;
const SQS_CHUNK = 64 * 1024;

const trim = (s: string): string => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
/** A unit price as written in prices.json, with at least two decimals ("$0.40", "$0.0000133334"). */
const money = (n: number): string => {
  const digits = trim(n.toFixed(10));
  return `$${(digits.split(".")[1]?.length ?? 0) >= 2 ? digits : n.toFixed(2)}`;
};
const count = (n: number): string =>
  n >= 100 ? Math.round(n).toLocaleString("en-US") : trim(n.toFixed(n >= 1 ? 2 : 4));

export const perMessageCost = (templates: Templates, prices: PriceList, usage: Usage): PerMessageCost => {
  const u = usage.values;
  const { of, price } = pricing(templates, prices);
  const lines: PerMessageLine[] = [];
  const notes: string[] = [];
  /** A line priced at `key`'s usd `per` one unit, or per million units ("million requests"). */
  const line = (item: string, quantity: number, unit: string, key: string, per: string) => {
    const p = price(key).usd;
    lines.push({
      item,
      quantity,
      unit,
      price: `${money(p)}/${per}`,
      usdPerMillion: (quantity * p) / (per.startsWith("million") ? MILLION : 1),
    });
  };

  // ---------------------------------------------------------------- Lambda
  const functions = new Map(of("AWS::Lambda::Function"));
  const byDescription = (description: string): Json => {
    const found = [...functions.values()].find((f) => f.Properties?.Description === description);
    if (found === undefined) throw new Error(`no function "${description}" in the templates`);
    return found;
  };
  /** The consumer of the queue whose logical id contains `queue`, with its mapping's BatchSize. */
  const consumer = (queue: string): { fn: Json; batchSize: number } => {
    const mapping = of("AWS::Lambda::EventSourceMapping").find(([, m]) =>
      JSON.stringify(m.Properties?.EventSourceArn).includes(queue),
    )?.[1];
    const fn = functions.get(mapping?.Properties?.FunctionName?.Ref ?? "");
    if (fn === undefined) throw new Error(`no consumer of ${queue} in the templates`);
    return { fn, batchSize: Number(mapping.Properties?.BatchSize ?? 10) };
  };
  const lambda = (label: string, fn: Json, invocations: number, ms: number) => {
    const mb = Number(fn.Properties?.MemorySize ?? 128);
    const arm = (fn.Properties?.Architectures ?? ["x86_64"]).includes("arm64");
    line(`Lambda requests: ${label}`, invocations, "requests", "lambdaRequest", "request");
    line(
      `Lambda GB-s: ${label} (${mb} MB, ${arm ? "arm64" : "x86_64"}, ${trim(ms.toFixed(1))} ms each)`,
      (invocations * ms * mb) / 1000 / 1024,
      "GB-s",
      arm ? "lambdaArmGbSecond" : "lambdaX86GbSecond",
      "GB-s",
    );
  };
  const persist = consumer("PersistQueue");
  const analytics = consumer("AnalyticsQueue");
  const persistBatch = Math.min(u.persistMessagesPerBatch, persist.batchSize);
  const analyticsBatch = Math.min(u.analyticsRowsPerInsert, analytics.batchSize);
  if (persistBatch < u.persistMessagesPerBatch || analyticsBatch < u.analyticsRowsPerInsert) {
    notes.push("An achieved batch size above the template's BatchSize is capped at the BatchSize.");
  }
  const persistBatches = MILLION / persistBatch;
  const analyticsBatches = MILLION / analyticsBatch;
  const reads = MILLION * u.readsPerMessage;
  lambda(
    "accept + fan-out (POST …/messages)",
    byDescription("POST /api/threads/{threadId}/messages"),
    MILLION,
    u.acceptFunctionMs,
  );
  lambda(
    "history reads (GET …/messages)",
    byDescription("GET /api/threads/{threadId}/messages"),
    reads,
    u.readFunctionMs,
  );
  lambda(
    `persist consumer (${trim(persistBatch.toFixed(1))} messages a batch)`,
    persist.fn,
    persistBatches,
    u.persistConsumerMsPerBatch,
  );
  lambda(
    `analytics consumer (${trim(analyticsBatch.toFixed(1))} rows a batch)`,
    analytics.fn,
    analyticsBatches,
    u.analyticsConsumerMsPerBatch,
  );

  // ---------------------------------------------------------------- API Gateway
  const apis = of("AWS::ApiGatewayV2::Api").map(([, a]) => a.Properties?.ProtocolType);
  if (apis.includes("HTTP")) {
    const metered = (kb: number) => Math.max(1, Math.ceil(kb / 512));
    line(
      "HTTP API requests (accepts + history reads, 512 KB metered)",
      MILLION * metered(u.messageBytes / 1024) + reads * metered(u.readResponseKb),
      "requests",
      "httpApiRequestMillion",
      "million requests",
    );
  }
  let pushes = 0;
  let usdPerConnectionHour = 0;
  if (apis.includes("WEBSOCKET")) {
    pushes = MILLION * u.subscribersPerThread;
    line(
      `WebSocket messages (PostToConnection to ${u.subscribersPerThread} subscriber(s), 32 KB metered)`,
      pushes * Math.max(1, Math.ceil(u.messageBytes / (32 * 1024))),
      "messages",
      "webSocketMessageMillion",
      "million messages",
    );
    usdPerConnectionHour = (60 * price("webSocketConnectionMinuteMillion").usd) / MILLION;
  }

  // ---------------------------------------------------------------- SQS
  const chunks = (messages: number) => Math.max(1, Math.ceil((messages * u.messageBytes) / SQS_CHUNK));
  const sqs = (item: string, calls: number, messagesPerCall: number) =>
    line(
      `SQS ${item} (64 KB chunks)`,
      calls * chunks(messagesPerCall),
      "requests",
      "sqsStandardRequestMillion",
      "million requests",
    );
  // ReceiveMessage and DeleteMessageBatch take at most 10 messages a call.
  const callsFor = (batches: number, batchSize: number) => batches * Math.ceil(batchSize / 10);
  const acceptSends = MILLION / u.acceptSendBatchEntries;
  sqs(
    `persist queue: ${u.acceptSendBatchEntries > 1 ? "SendMessageBatch" : "SendMessage"} from the accept function`,
    acceptSends,
    u.acceptSendBatchEntries,
  );
  sqs(
    "persist queue: ReceiveMessage + DeleteMessageBatch",
    2 * callsFor(persistBatches, persistBatch),
    Math.min(10, persistBatch),
  );
  const analyticsSends = callsFor(persistBatches, persistBatch);
  sqs(
    "analytics queue: SendMessageBatch from the persist consumer",
    analyticsSends,
    Math.min(10, persistBatch),
  );
  sqs(
    "analytics queue: ReceiveMessage + DeleteMessageBatch",
    2 * callsFor(analyticsBatches, analyticsBatch),
    Math.min(10, analyticsBatch),
  );

  // ---------------------------------------------------------------- cache
  const serverless = of("AWS::ElastiCache::ServerlessCache");
  for (const [, cache] of serverless) {
    const valkey = cache.Properties?.Engine === "valkey";
    const ecpu = (commands: number, kb: number) => Math.max(commands * u.redisEcpuPerCommand, kb);
    const ecpus =
      MILLION * ecpu(u.redisCommandsPerAccept, u.redisKbPerAccept) +
      reads * ecpu(u.redisCommandsPerRead, u.redisKbPerRead) +
      persistBatches * ecpu(u.redisCommandsPerPersistBatch, 0);
    line(
      `ElastiCache Serverless ${valkey ? "Valkey" : "Redis OSS"} ECPUs (max(commands × ${u.redisEcpuPerCommand}, KB) per accept, read and persist batch)`,
      ecpus,
      "ECPUs",
      valkey ? "elastiCacheServerlessValkeyEcpuMillion" : "elastiCacheServerlessRedisEcpuMillion",
      "million ECPUs",
    );
    line(
      `ElastiCache Serverless storage (${u.cacheKbPerMessage} KB a message for ${u.cacheHoursPerMessage} h; the minimum is in the idle cost)`,
      ((MILLION * u.cacheKbPerMessage * 1024) / GB) * u.cacheHoursPerMessage,
      "GB-hours",
      valkey ? "elastiCacheServerlessValkeyGbHour" : "elastiCacheServerlessRedisGbHour",
      "GB-hour",
    );
  }
  if (
    serverless.length === 0 &&
    of("AWS::ElastiCache::ReplicationGroup").length + of("AWS::ElastiCache::CacheCluster").length > 0
  ) {
    notes.push(
      "The cache is node-based: billed by the node-hour whatever the traffic, so it is in the idle cost, not here.",
    );
  }

  // ---------------------------------------------------------------- PostgreSQL
  const acuHours = (u.acuPer1000MessagesPerSecond * MILLION) / 1000 / 3600;
  const serverlessClusters = of("AWS::RDS::DBCluster").filter(
    ([, c]) => c.Properties?.ServerlessV2ScalingConfiguration !== undefined,
  );
  if (serverlessClusters.length > 0) {
    line(
      `Aurora Serverless v2 ACU-hours of the load (ASSUMPTION: ${u.acuPer1000MessagesPerSecond} ACU per 1,000 msg/s sustained; ${u.postgresTransactionsPerMessage} transactions a message)`,
      acuHours,
      "ACU-hours",
      "auroraServerlessV2AcuHour",
      "ACU-hour",
    );
  }
  if (of("AWS::RDS::DBProxy").length > 0) {
    line(
      "RDS Proxy on those ACU-hours (upper bound: nothing extra while the cluster stays under the 8 ACUs the idle cost bills)",
      acuHours,
      "ACU-hours",
      "rdsProxyServerlessAcuHour",
      "ACU-hour",
    );
  }

  // ---------------------------------------------------------------- egress
  const endpoints = of("AWS::EC2::VPCEndpoint").map(([, e]) =>
    JSON.stringify(e.Properties?.ServiceName ?? ""),
  );
  const sqsEndpoint = endpoints.some((s) => s.includes('.sqs"'));
  const apiEndpoint = endpoints.some((s) => s.includes("execute-api"));
  const privateLink = endpoints.some((s) => s.includes("vpce-svc"));
  // Each message's body is sent twice (to the persist queue, then to the analytics queue).
  const sqsBytes = (acceptSends + analyticsSends) * u.natBytesPerSqsRequest + 2 * MILLION * u.messageBytes;
  if (sqsEndpoint) {
    line(
      "SQS interface endpoint data processing (the functions' SQS sends)",
      sqsBytes / GB,
      "GB",
      "interfaceEndpointGb",
      "GB",
    );
  }
  const natBytes =
    (sqsEndpoint ? 0 : sqsBytes) +
    (apiEndpoint ? 0 : pushes * u.natBytesPerPostToConnection) +
    (privateLink ? 0 : MILLION * u.natBytesPerClickHouseRow);
  const through = [
    sqsEndpoint ? undefined : "SQS sends",
    apiEndpoint || pushes === 0 ? undefined : "PostToConnection",
    privateLink ? undefined : "ClickHouse inserts",
  ].filter((s) => s !== undefined);
  notes.push(
    sqsEndpoint
      ? "SQS is reached through its interface endpoint: its sends are billed per GB there, not through NAT."
      : "No SQS interface endpoint: the functions' SQS sends leave through NAT (the consumers' receives and deletes are made by the Lambda service, outside the VPC).",
  );
  const natGateways = of("AWS::EC2::NatGateway").length;
  const natInstances = of("AWS::EC2::Instance").filter(
    ([, r]) => r.Properties?.SourceDestCheck === false,
  ).length;
  if (natGateways > 0) {
    line(`NAT gateway data processing (${through.join(", ")})`, natBytes / GB, "GB", "natGatewayGb", "GB");
  } else if (natInstances > 0) {
    const azs = of("AWS::EC2::Subnet").filter(([, s]) =>
      (s.Properties?.Tags ?? []).some((t: Json) => t.Key === "aws-cdk:subnet-type" && t.Value === "Private"),
    ).length;
    const crossing = azs > natInstances ? (azs - natInstances) / azs : 0;
    notes.push(
      "A NAT instance has no per-GB processing charge: only the traffic that crosses AZs to reach it is billed.",
    );
    line(
      `Inter-AZ transfer to the NAT instance (${through.join(", ")}; ${trim((crossing * 100).toFixed(1))}% of it from other AZs, billed both ways)`,
      (2 * crossing * natBytes) / GB,
      "GB",
      "interAzTransferGb",
      "GB each way",
    );
  }

  // ---------------------------------------------------------------- ClickHouse
  lines.push({
    item: "ClickHouse (ASSUMPTION, not an AWS price: ClickHouse Cloud compute while inserting, usage.json)",
    quantity: MILLION,
    unit: "rows",
    price: `${money(u.clickhouseUsdPerMillionRows)}/million rows`,
    usdPerMillion: u.clickhouseUsdPerMillionRows,
  });

  return {
    lines,
    totalPerMillion: lines.reduce((n, l) => n + l.usdPerMillion, 0),
    usdPerConnectionHour,
    notes,
    idleUsdPerMonth: total(idleCost(templates, prices)),
  };
};

/** The Markdown of one environment: the table, connection time, idle cost and notes. */
export const renderPerMessage = (name: string, cost: PerMessageCost): string =>
  [
    `**${name}**: $${cost.totalPerMillion.toFixed(2)} per million accepted messages, plus $${cost.idleUsdPerMonth.toFixed(2)}/month idle`,
    "",
    "| Per million accepted messages | Quantity | Unit price | USD per million |",
    "| --- | ---: | --- | ---: |",
    ...cost.lines.map(
      (l) => `| ${l.item} | ${count(l.quantity)} ${l.unit} | ${l.price} | ${l.usdPerMillion.toFixed(4)} |`,
    ),
    `| **Total** | | | **${cost.totalPerMillion.toFixed(2)}** |`,
    "",
    ...(cost.usdPerConnectionHour > 0
      ? [
          `- WebSocket connection time, not in the total: ${money(cost.usdPerConnectionHour)} per connection-hour (60 connection-minutes).`,
        ]
      : []),
    `- Idle cost: $${cost.idleUsdPerMonth.toFixed(2)}/month (\`npm run cost:idle\`, docs/deploy.md).`,
    ...cost.notes.map((n) => `- ${n}`),
  ].join("\n");

/** Which values are measured (and from which run) and which are still estimates. */
export const renderAssumptions = (usage: Usage): string => {
  const measured = USAGE_KEYS.filter((k) => usage.measured[k] !== undefined);
  const estimated = USAGE_KEYS.filter((k) => usage.measured[k] === undefined);
  return [
    measured.length > 0
      ? `Measured (docs/performance/usage.json): ${measured.map((k) => `${k} = ${usage.values[k]} (${usage.measured[k]})`).join(", ")}.`
      : "Measured: none (docs/performance/usage.json not found or without values).",
    `Not measured (estimates of scripts/cost/usage.json): ${estimated.join(", ")}.`,
  ].join("\n");
};

export const BLOCK = {
  start: "<!-- cost-per-million:start (generated by npm run cost -- --write; do not edit) -->",
  end: "<!-- cost-per-million:end -->",
};

export const replaceCostBlock = (document: string, content: string): string => {
  const from = document.indexOf(BLOCK.start);
  const to = document.indexOf(BLOCK.end);
  if (from < 0 || to < from) throw new Error(`no ${BLOCK.start} … ${BLOCK.end} block`);
  return `${document.slice(0, from + BLOCK.start.length)}\n${content}\n${document.slice(to)}`;
};
