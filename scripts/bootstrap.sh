#!/usr/bin/env bash
# Everything the README's two commands need, on a fresh machine: the npm dependencies (which bring
# Node 22 into node_modules/.bin), and Redis, PostgreSQL and ClickHouse on 127.0.0.1.
# Safe to run again: each step is skipped when it is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

lock_hash() { sha256sum package-lock.json | cut -d' ' -f1; }
stamp=node_modules/.install-stamp
if [[ ! -f $stamp || "$(cat "$stamp")" != "$(lock_hash)" ]]; then
  echo "bootstrap: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  lock_hash > "$stamp"
fi

node_version=$(node_modules/.bin/node --version)
if [[ $node_version != v22.* ]]; then
  echo "bootstrap: expected Node 22 in node_modules/.bin, found $node_version" >&2
  exit 1
fi

# redis-cluster: the integration tests also run against a 3-master cluster (ElastiCache-like).
bash scripts/services.sh up ${SERVICES:-redis postgres clickhouse redis-cluster pgbouncer}

# The browser tests (npm test) also need headless Chromium; `npm start` does not.
if [[ ${1:-} == --browser ]]; then
  bash scripts/services.sh up chromium
fi
