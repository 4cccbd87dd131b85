/**
 * Latency profiles of the benchmark (`npm run bench -- --profile local|aws`): how long each tier's
 * round trip takes, injected by a TCP proxy between the handlers and each local server.
 *
 *  - `local`: every tier direct, as on this machine (sub-millisecond loopback round trips);
 *  - `aws`: each response held for a delay drawn from a log-normal distribution with the tier's
 *    published p50 and p99 in AWS (the figures and their sources: docs/performance.md, "Latency
 *    profiles"). PostgreSQL responses that end a write (INSERT, UPDATE, DELETE, COMMIT) are held
 *    for the commit figure on top of the round trip: Aurora's commit waits for a storage quorum.
 */

export interface Distribution {
  readonly p50: number;
  readonly p99: number;
}

export interface TierLatency {
  /** Added to every response chunk of the tier (ms). */
  readonly roundTrip: Distribution;
  /** PostgreSQL only: added when a response chunk completes a write (ms). */
  readonly commit?: Distribution;
}

export type ProxiedTier = "redis" | "postgres" | "sqs" | "websocket" | "clickhouse";
export const PROXIED_TIERS: readonly ProxiedTier[] = ["redis", "postgres", "sqs", "websocket", "clickhouse"];

export type ProfileName = "local" | "aws";

/** Per tier; `local` has none (no proxy at all). The citations are in docs/performance.md. */
export const PROFILES: Record<ProfileName, Partial<Record<ProxiedTier, TierLatency>>> = {
  local: {},
  aws: {
    // ElastiCache Serverless in the same VPC (node-based measures 0.4 / 1.3; the serverless proxy and TLS add a hop).
    redis: { roundTrip: { p50: 0.6, p99: 2 } },
    // Through RDS Proxy (one more hop) to the Aurora writer; a write's commit waits for 4 of 6 storage copies.
    postgres: { roundTrip: { p50: 1.5, p99: 6 }, commit: { p50: 3, p99: 12 } },
    // SendMessage and ReceiveMessage: 5–10 ms in SQS, plus HTTPS and the occasional new connection.
    sqs: { roundTrip: { p50: 10, p99: 60 } },
    // PostToConnection: a signed HTTPS call to the regional execute-api endpoint.
    websocket: { roundTrip: { p50: 15, p99: 80 } },
    // A batch insert into ClickHouse Cloud (each insert writes a part to object storage).
    clickhouse: { roundTrip: { p50: 50, p99: 300 } },
  },
};

/** z of the 99th percentile of the standard normal distribution. */
const Z99 = 2.3263;

/** Draws from the log-normal distribution with this median and 99th percentile. */
export const sampler = (d: Distribution, random: () => number = Math.random): (() => number) => {
  const mu = Math.log(d.p50);
  const sigma = Math.log(d.p99 / d.p50) / Z99;
  return () => {
    // Box–Muller: one standard normal draw.
    const u = 1 - random();
    const v = random();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return Math.exp(mu + sigma * z);
  };
};

/** CommandComplete tags of writes in PostgreSQL's wire protocol ('C', length, tag). */
const WRITE_TAGS = ["INSERT ", "UPDATE ", "DELETE ", "COMMIT\0"].map((tag) => Buffer.from(tag));

/** The response delay of one chunk of a tier's traffic. */
export const responseDelay = (latency: TierLatency): ((chunk: Buffer) => number) => {
  const roundTrip = sampler(latency.roundTrip);
  if (latency.commit === undefined) return () => roundTrip();
  const commit = sampler(latency.commit);
  return (chunk) => roundTrip() + (WRITE_TAGS.some((tag) => chunk.includes(tag)) ? commit() : 0);
};
