/** The ClickHouse HTTP client, with a request timeout and its own logging silenced (we log). */
import {
  type ClickHouseClient,
  type ClickHouseClientConfigOptions,
  ClickHouseLogLevel,
  createClient,
} from "@clickhouse/client";

export interface ClickHouseOptions {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly database?: string;
  readonly timeoutMs: number;
}

export const clickHouseConfig = (options: ClickHouseOptions): ClickHouseClientConfigOptions => ({
  url: options.url,
  username: options.username,
  password: options.password,
  ...(options.database !== undefined ? { database: options.database } : {}),
  request_timeout: options.timeoutMs,
  max_open_connections: 4,
  log: { level: ClickHouseLogLevel.OFF },
});

export const createClickHouseClient = (options: ClickHouseOptions): ClickHouseClient =>
  createClient(clickHouseConfig(options));

/**
 * ClickHouse error codes that mean "try again later". Server errors are plain Errors carrying
 * "Code: N" in their text on 18.16; anything without a code is the network.
 */
const TRANSIENT_CODES = new Set([159, 164, 202, 209, 210, 241, 242, 252, 319, 425, 999]);

export const isClickHouseOutage = (error: unknown): boolean => {
  if (error instanceof TypeError || error instanceof RangeError) return false;
  const message = error instanceof Error ? error.message : String(error);
  const code = /Code: (\d+)/.exec(message)?.[1] ?? (error as { code?: unknown } | null)?.code;
  if (code === undefined || code === null || Number.isNaN(Number(code))) return true;
  return TRANSIENT_CODES.has(Number(code));
};
