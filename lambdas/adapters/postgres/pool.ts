/**
 * The PostgreSQL pool of one Lambda instance: a handful of connections (RDS Proxy multiplexes
 * them), no session state and only unnamed statements, so the proxy never pins a connection.
 * No startup parameters but the application name: RDS Proxy (and PgBouncer) refuse others such as
 * `statement_timeout`. The server-side statement timeout is a setting of the application's role
 * (session-settings.ts); the client gives up on a query a little after it.
 */
import pg from "pg";

export interface PgPoolOptions {
  readonly connectionString?: string;
  readonly host?: string;
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  readonly port?: number;
  readonly ssl: boolean;
  readonly max: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly applicationName: string;
}

export const pgPoolConfig = (options: PgPoolOptions): pg.PoolConfig => ({
  ...(options.connectionString !== undefined ? { connectionString: options.connectionString } : {}),
  ...(options.host !== undefined ? { host: options.host } : {}),
  ...(options.user !== undefined ? { user: options.user } : {}),
  ...(options.password !== undefined ? { password: options.password } : {}),
  ...(options.database !== undefined ? { database: options.database } : {}),
  ...(options.port !== undefined ? { port: options.port } : {}),
  ...(options.ssl ? { ssl: { rejectUnauthorized: true } } : {}),
  max: options.max,
  connectionTimeoutMillis: options.connectTimeoutMs,
  idleTimeoutMillis: 30_000,
  query_timeout: options.statementTimeoutMs + 500,
  keepAlive: true,
  application_name: options.applicationName,
});

export const createPgPool = (options: PgPoolOptions, onError: (error: Error) => void): pg.Pool => {
  const pool = new pg.Pool(pgPoolConfig(options));
  // An idle connection dropped by the server must not crash the process.
  pool.on("error", onError);
  return pool;
};

/** Server states that mean "not now" rather than "bad data" (SQLSTATE classes and codes). */
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-3]|57014|58|40001|40P01|55P03|55006|XX)/;

export const isPgOutage = (error: unknown): boolean => {
  if (error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError) return false;
  if (typeof error !== "object" || error === null) return true;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  // Errors raised by the server carry a severity and an SQLSTATE; anything else is the network.
  if (typeof severity === "string" && typeof code === "string") return TRANSIENT_SQLSTATE.test(code);
  return true;
};
