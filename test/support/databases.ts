/** Private PostgreSQL databases for test stacks, copied from the migrated template. */
import pg from "pg";

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

const withAdmin = async <T>(url: string, work: (admin: pg.Client) => Promise<T>): Promise<T> => {
  const adminUrl = new URL(url);
  adminUrl.pathname = "/postgres";
  const admin = new pg.Client({ connectionString: adminUrl.toString(), connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
};

const nameOf = (url: string): string => {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (!IDENTIFIER.test(name)) throw new Error(`unsupported database name: ${name}`);
  return name;
};

/** Creates `name` as a copy of the template database; returns its URL. */
export const createDatabaseFrom = async (templateUrl: string, name: string): Promise<string> => {
  const template = nameOf(templateUrl);
  const url = new URL(templateUrl);
  url.pathname = `/${name}`;
  nameOf(url.toString());
  await withAdmin(templateUrl, (admin) => admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  return url.toString();
};

/** Drops the databases a previous run's stacks left behind (a run that was killed). */
export const dropLeftovers = async (url: string, prefix: string): Promise<void> => {
  await withAdmin(url, async (admin) => {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
      [prefix],
    );
    for (const { datname } of rows) {
      if (IDENTIFIER.test(datname)) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    }
  });
};

export const dropDatabase = async (url: string): Promise<void> => {
  const name = nameOf(url);
  await withAdmin(url, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
};
