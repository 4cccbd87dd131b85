# shellcheck shell=bash
# PgBouncer in transaction pooling mode in front of the PostgreSQL of services.sh, on
# 127.0.0.1:$PGBOUNCER_PORT: the stand-in for RDS Proxy. Like the proxy it refuses startup
# parameters it does not know (statement_timeout, options, ...), and in transaction mode any
# session state (SET, prepared statements, advisory locks, temp tables) would leak between clients
# or break — so the tests that run through it catch what would pin or fail behind RDS Proxy.
# Sourced by services.sh (uses its helpers); every database name is forwarded ("*").

PGBOUNCER_PORT=${PGBOUNCER_PORT:-6432}

pgb_dir() {
  printf '%s/pgbouncer-%s\n' "$STATE_DIR" "$PGBOUNCER_PORT"
}

pgb_bin() {
  local b
  for b in /usr/sbin/pgbouncer /usr/bin/pgbouncer; do
    if [[ -x $b ]]; then
      printf '%s\n' "$b"
      return 0
    fi
  done
  have pgbouncer && command -v pgbouncer
}

# pgb_ready : a query goes through PgBouncer to PostgreSQL.
pgb_ready() {
  local psql
  psql=$(pg_tool psql 2>/dev/null) || return 1
  tmo 5 "$psql" -h "$HOST" -p "$PGBOUNCER_PORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1
}

pgb_start() {
  local how=$1 dir bin
  dir=$(pgb_dir)
  bin=$(pgb_bin) || die "pgbouncer: binary not found after install"
  make_dir "$dir"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$HOST port=$PG_PORT

[pgbouncer]
listen_addr = $HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
max_db_connections = 80
server_reset_query =
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
admin_users = postgres
EOF
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  if [[ $EUID -eq 0 ]]; then
    # PgBouncer refuses to run as root.
    chown -R postgres:postgres -- "$dir"
    # 9>&-: the daemon must not inherit the lock on the state folder (it would hold it forever).
    as_pg "$dir" "$bin" -d "$dir/pgbouncer.ini" >>"$dir/start.log" 2>&1 9>&- || {
      log_tail "$dir/pgbouncer.log"
      die "pgbouncer: failed to start (log: $dir/pgbouncer.log)"
    }
  else
    "$bin" -d "$dir/pgbouncer.ini" >>"$dir/start.log" 2>&1 9>&- || die "pgbouncer: failed to start"
  fi
  wait_until "$START_WAIT" pgb_ready || {
    log_tail "$dir/pgbouncer.log"
    die "pgbouncer: did not answer on $HOST:$PGBOUNCER_PORT within ${START_WAIT}s"
  }
  report pgbouncer "$HOST:$PGBOUNCER_PORT" "$how (transaction pooling → $HOST:$PG_PORT, pid $(pid_from_file "$dir/pgbouncer.pid"))"
}

up_pgbouncer() {
  local addr="$HOST:$PGBOUNCER_PORT" dir pid
  dir=$(pgb_dir)
  if pgb_ready; then
    report pgbouncer "$addr" "answering, reused"
    return 0
  fi
  if pid=$(live_pid "$dir/pgbouncer.pid" pgbouncer); then
    # Ours, but not answering (PostgreSQL was restarted, say): start afresh.
    stop_pid "$pid" TERM
  elif port_open "$PGBOUNCER_PORT"; then
    die "pgbouncer: something else listens on $addr and does not forward to PostgreSQL"
  fi
  if pgb_bin >/dev/null; then
    pgb_start "started"
    return 0
  fi
  apt_install pgbouncer || missing pgbouncer "$addr" pgbouncer "PgBouncer 1.x"
  pgb_start "installed + started"
}

down_pgbouncer() {
  local addr="$HOST:$PGBOUNCER_PORT" dir pid
  dir=$(pgb_dir)
  if pid=$(live_pid "$dir/pgbouncer.pid" pgbouncer); then
    stop_pid "$pid" TERM
    rm -f -- "$dir/pgbouncer.pid"
    report pgbouncer "$addr" "stopped (pid $pid)"
  elif pgb_ready; then
    report pgbouncer "$addr" "left running (not started by this script)"
  else
    report pgbouncer "$addr" "not running"
  fi
}

status_pgbouncer() {
  local addr="$HOST:$PGBOUNCER_PORT" dir pid
  dir=$(pgb_dir)
  if pgb_ready; then
    if pid=$(live_pid "$dir/pgbouncer.pid" pgbouncer); then
      report pgbouncer "$addr" "answering (transaction pooling), started by this script (pid $pid)"
    else
      report pgbouncer "$addr" "answering, reused (not started by this script)"
    fi
  else
    report pgbouncer "$addr" "not answering"
  fi
}
