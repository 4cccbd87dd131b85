/**
 * One ioredis client per process, standalone or cluster. ElastiCache Serverless is always a TLS
 * cluster endpoint (`rediss://...` with REDIS_CLUSTER=true). Every command has a timeout (commands
 * issued while the first connection is made wait at most that long; once connected, a command
 * issued while the connection is down fails at once): a slow or absent Redis is cut off, not
 * waited for. The caller's TierGuard adds an outer bound.
 */
import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { VARYING_KEY_SCRIPTS } from "./scripts.ts";

export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  readonly url: string;
  readonly cluster: boolean;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
}

const reconnectDelay = (attempt: number): number => Math.min(50 * 2 ** attempt, 2000);

/** The ioredis options for a URL: standalone, or a cluster seeded with that one node. */
export const redisClientConfig = (
  options: RedisClientOptions,
):
  | { readonly cluster: false; readonly options: RedisOptions }
  | { readonly cluster: true; readonly nodes: ClusterNode[]; readonly options: ClusterOptions } => {
  const url = new URL(options.url);
  const tls = url.protocol === "rediss:";
  const common = {
    connectTimeout: options.connectTimeoutMs,
    commandTimeout: options.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: true,
    ...(url.username !== "" ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password !== "" ? { password: decodeURIComponent(url.password) } : {}),
    ...(tls ? { tls: {} } : {}),
  };
  const port = Number(url.port || 6379);
  if (!options.cluster) {
    return {
      cluster: false,
      options: { ...common, host: url.hostname, port, retryStrategy: reconnectDelay },
    };
  }
  return {
    cluster: true,
    nodes: [{ host: url.hostname, port }],
    options: {
      enableAutoPipelining: true,
      // Auto-pipelining groups a command by its first argument; a script that takes its key count
      // first would join the pipeline of the node serving that number's slot, and the pipeline
      // would then fail every command in it for mixing nodes. Such scripts are sent on their own.
      autoPipeliningIgnoredCommands: VARYING_KEY_SCRIPTS,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: options.connectTimeoutMs,
      // TLS certificates name the configuration endpoint, not the node IPs.
      ...(tls
        ? {
            dnsLookup: (address: string, callback: (err: null, address: string) => void) =>
              callback(null, address),
          }
        : {}),
      redisOptions: common,
    },
  };
};

export const createRedisClient = (options: RedisClientOptions): RedisClient => {
  const config = redisClientConfig(options);
  if (!config.cluster) return failFastOnceReady(new Redis(config.options));
  const cluster = failFastOnceReady(new Cluster(config.nodes, config.options));
  cluster.on("+node", (node: Redis) => failFastOnceReady(node));
  return cluster;
};

/**
 * Commands issued while the first connection is being made wait for it (a cold start's first
 * request). Once connected, a command issued while the connection is down fails at once with a
 * "not sent" error, instead of waiting in the offline queue: a queued command that times out is
 * still sent when the connection comes back, so its outcome would be unknown (a reservation made
 * behind the caller's back), where a refused one is known not to have happened.
 */
const failFastOnceReady = <T extends Redis | Cluster>(client: T): T => {
  client.once("ready", () => {
    client.options.enableOfflineQueue = false;
  });
  return client;
};

/** Server replies that mean "Redis cannot serve now", as opposed to a bad command. */
const UNAVAILABLE_REPLIES = /^(LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|OOM|BUSY|NOREPLICAS)/;

/**
 * A command that never left this process: the connection was refused, or was down when the command
 * was issued, so the server did nothing (as opposed to a timeout, after which it may have). Not
 * "Connection is closed": a cluster node's connection that drops fails with it the commands it had
 * already written.
 */
export const redisCommandNotSent = (error: unknown): boolean =>
  error instanceof Error &&
  /ECONNREFUSED|Stream isn't writeable|enableOfflineQueue|None of startup nodes is available/.test(
    error.message,
  );

export const isRedisOutage = (error: unknown): boolean => {
  if (!(error instanceof Error)) return true;
  if (error.name === "ReplyError") return UNAVAILABLE_REPLIES.test(error.message);
  return true;
};
