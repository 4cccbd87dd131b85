/**
 * Server-side limits for the application's sessions, set on its role in its database by the
 * migration step. Connection poolers refuse them as startup parameters (RDS Proxy and PgBouncer
 * answer "unsupported startup parameter"), and a `SET` in a session pins it to one server
 * connection; a role setting costs neither. The client keeps its own query timeout on top.
 */
import type pg from "pg";

/** Longest a statement of the application runs on the server. */
export const SERVER_STATEMENT_TIMEOUT_MS = 3000;
/** A session left inside a transaction (a frozen Lambda) is ended after this long. */
export const IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000;

export const applyRoleSettings = async (
  client: pg.ClientBase,
  role: string,
  database: string,
): Promise<void> => {
  const scope = `ROLE ${client.escapeIdentifier(role)} IN DATABASE ${client.escapeIdentifier(database)}`;
  await client.query(`ALTER ${scope} SET statement_timeout = ${SERVER_STATEMENT_TIMEOUT_MS}`);
  await client.query(
    `ALTER ${scope} SET idle_in_transaction_session_timeout = ${IDLE_IN_TRANSACTION_TIMEOUT_MS}`,
  );
};
