/**
 * Erased threads in ClickHouse: tombstones (the `erased_threads` table the analytics consumer
 * checks before it inserts) and the deletes of their rows.
 *
 * Which delete runs where: ClickHouse 23.3 and later have lightweight deletes (`DELETE FROM t
 * WHERE …`): rows are masked at once (queries, FINAL included, no longer see them) and dropped from
 * disk as parts merge. Older servers — 18.16, the local one — have only mutations (`ALTER TABLE t
 * DELETE WHERE …`), which rewrite the parts holding the rows in the background. The server's
 * version is read once; `remaining` tells when either has taken effect.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type { ArchiveEraser } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

/** The tables that hold rows of a thread (both carry `thread_id`). */
const TABLES = ["messages", "feedback"] as const;

/** Thread ids are UUIDs; anything else never reaches a statement. */
const quoted = (ids: readonly string[]): string => {
  for (const id of ids) if (!/^[0-9a-fA-F-]{1,64}$/.test(id)) throw new TypeError(`not a thread id: ${id}`);
  return ids.map((id) => `'${id}'`).join(", ");
};

/** True when the server has lightweight deletes (ClickHouse 23.3 and later). */
export const hasLightweightDelete = (version: string): boolean => {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 3);
};

/** The statement that deletes a table's rows of these threads on a server of this version. */
export const deleteStatement = (version: string, table: string, ids: readonly string[]): string =>
  hasLightweightDelete(version)
    ? `DELETE FROM ${table} WHERE thread_id IN (${quoted(ids)})`
    : `ALTER TABLE ${table} DELETE WHERE thread_id IN (${quoted(ids)})`;

export class ClickHouseArchiveEraser implements ArchiveEraser {
  private version: Promise<string> | undefined;

  constructor(
    private readonly client: ClickHouseClient,
    private readonly guard: TierGuard,
  ) {}

  tombstone(threadIds: readonly string[], nowMs: number): Promise<void> {
    return this.guard.run(async () => {
      await this.client.insert({
        table: "erased_threads",
        values: threadIds.map((thread_id) => ({ thread_id, erased_at_ms: nowMs })),
        format: "JSONEachRow",
      });
    });
  }

  erase(threadIds: readonly string[]): Promise<void> {
    return this.guard.run(async () => {
      const version = await this.serverVersion();
      for (const table of TABLES) {
        await this.client.command({ query: deleteStatement(version, table, threadIds) });
      }
    });
  }

  remaining(threadIds: readonly string[]): Promise<number> {
    return this.guard.run(async () => {
      let total = 0;
      for (const table of TABLES) {
        const result = await this.client.query({
          query: `SELECT count() AS n FROM ${table} FINAL WHERE thread_id IN (${quoted(threadIds)})`,
          format: "JSONEachRow",
        });
        const rows = await result.json<{ n: string | number }>();
        total += Number(rows[0]?.n ?? 0);
      }
      return total;
    });
  }

  private serverVersion(): Promise<string> {
    this.version ??= this.client
      .query({ query: "SELECT version() AS v", format: "JSONEachRow" })
      .then((r) => r.json<{ v: string }>())
      .then((rows) => rows[0]?.v ?? "0")
      .catch((error: unknown) => {
        this.version = undefined;
        throw error;
      });
    return this.version;
  }
}

/** Which of these threads ClickHouse holds a tombstone for. */
export const erasedAmong = async (
  client: ClickHouseClient,
  threadIds: readonly string[],
): Promise<Set<string>> => {
  const result = await client.query({
    query: `SELECT DISTINCT thread_id FROM erased_threads WHERE thread_id IN (${quoted(threadIds)})`,
    format: "JSONEachRow",
  });
  return new Set((await result.json<{ thread_id: string }>()).map((r) => r.thread_id));
};
