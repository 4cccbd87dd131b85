#!/usr/bin/env bash
# scripts/services.sh - make sure the local data servers answer on 127.0.0.1.
#
#   scripts/services.sh up     [redis|postgres|clickhouse|redis-cluster|all ...]
#   scripts/services.sh down   [redis|postgres|clickhouse|redis-cluster|all ...]
#   scripts/services.sh status
#
# `up` without a name means: redis postgres clickhouse (redis-cluster only when
# named, or with `all`). For each server: reuse whatever already answers on the
# configured port; else start one from the installed binaries with its data and
# logs under $STATE_DIR/<name>-<port>/; else (root + apt-get) install the Debian
# packages and start one; else print what to install and fail.
# `down` stops only servers this script started (pid files under $STATE_DIR).
#
# Environment (defaults):
#   STATE_DIR             $TMPDIR/chat-pipeline-<checksum of the clone's path>/services
#   REDIS_PORT            6379
#   PG_PORT               5432
#   CLICKHOUSE_HTTP_PORT  8123
#   CLICKHOUSE_TCP_PORT   9000
#   REDIS_CLUSTER_PORTS   "7001 7002 7003"
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
TEMPLATE_DIR="$SCRIPT_DIR/services"

# Server state lives outside the clone, under the temp folder (world-searchable): the postgres user
# must reach its data folder, and a clone may sit in a home directory with mode 700. One folder per
# clone (named after a checksum of its path), so two clones do not share pid files.
STATE_DIR=${STATE_DIR:-${TMPDIR:-/tmp}/chat-pipeline-$(printf '%s' "$REPO_DIR" | cksum | cut -d' ' -f1)/services}
REDIS_PORT=${REDIS_PORT:-6379}
PG_PORT=${PG_PORT:-5432}
CLICKHOUSE_HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}
CLICKHOUSE_TCP_PORT=${CLICKHOUSE_TCP_PORT:-9000}
REDIS_CLUSTER_PORTS=${REDIS_CLUSTER_PORTS:-7001 7002 7003}

readonly HOST=127.0.0.1
readonly START_WAIT=30   # seconds to wait for a server we started to answer
readonly STOP_WAIT=30    # seconds to wait for a server we stop to exit

case $STATE_DIR in
  /*) ;;
  *) STATE_DIR="$PWD/$STATE_DIR" ;;
esac

# ----------------------------------------------------------------------------
# small helpers

usage() {
  cat <<'EOF'
usage: scripts/services.sh up     [redis|postgres|clickhouse|redis-cluster|pgbouncer|chromium|all ...]
       scripts/services.sh down   [redis|postgres|clickhouse|redis-cluster|pgbouncer|all ...]
       scripts/services.sh status

  up      reuse or start the servers (default: redis postgres clickhouse;
          redis-cluster and pgbouncer only when named or with "all"; chromium,
          for the browser tests, is a package to install, not a server)
  down    stop the servers this script started (default: all of them)
  status  one line per server

environment: STATE_DIR REDIS_PORT PG_PORT CLICKHOUSE_HTTP_PORT
             CLICKHOUSE_TCP_PORT REDIS_CLUSTER_PORTS PGBOUNCER_PORT
EOF
}

die() {
  printf 'services.sh: error: %s\n' "$@" >&2
  exit 1
}

note() {
  printf '%s\n' "$@" >&2
}

# report NAME ADDRESS TEXT...
report() {
  local name=$1 addr=$2
  shift 2
  printf '%-13s %-21s %s\n' "$name" "$addr" "$*"
}

have() {
  command -v "$1" >/dev/null 2>&1
}

# tmo SECONDS CMD... : run CMD with a time limit when coreutils timeout exists.
tmo() {
  local secs=$1
  shift
  if have timeout; then
    timeout --kill-after=5 "$secs" "$@"
  else
    "$@"
  fi
}

# wait_until SECONDS CMD... : poll CMD every 0.5 s until it succeeds.
wait_until() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    if ((SECONDS >= end)); then
      return 1
    fi
    sleep 0.5
  done
}

check_port() {
  local var=$1 value=$2
  if [[ ! $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
    die "$var=$value is not a valid TCP port"
  fi
}

# make_dir DIR... : mkdir -p with world-searchable modes (the postgres user
# must be able to traverse the state folders when we run as root).
make_dir() {
  (umask 022 && mkdir -p -- "$@")
}

# port_open PORT : something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  tmo 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$HOST" "$1" 2>/dev/null
}

# pid_from_file FILE : print the pid in FILE (first line).
pid_from_file() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(head -n 1 -- "$1" 2>/dev/null | tr -dc '0-9') || return 1
  [[ -n $pid ]] || return 1
  printf '%s\n' "$pid"
}

# live_pid FILE WORD : print the pid in FILE if that process is alive and its
# command line mentions WORD (guards against recycled pids).
live_pid() {
  local pid cmd
  pid=$(pid_from_file "$1") || return 1
  ! pid_gone "$pid" || return 1
  if [[ -r /proc/$pid/cmdline ]]; then
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$2"* ]] || return 1
  fi
  printf '%s\n' "$pid"
}

# stop_pid PID SIGNAL : signal PID and wait (bounded) until it is gone.
stop_pid() {
  local pid=$1 sig=$2
  kill "-$sig" "$pid" 2>/dev/null || return 0
  if wait_until "$STOP_WAIT" pid_gone "$pid"; then
    return 0
  fi
  note "pid $pid did not exit after SIG$sig within ${STOP_WAIT}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_until 5 pid_gone "$pid" || note "pid $pid is still there"
}

# pid_gone PID : the process is gone, or is a zombie waiting to be reaped.
pid_gone() {
  local st
  kill -0 "$1" 2>/dev/null || return 0
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st%% *} == Z ]]
}

log_tail() {
  if [[ -f $1 ]]; then
    note "---- last lines of $1 ----"
    tail -n "${2:-20}" -- "$1" >&2 || true
    note "----"
  fi
}

# ----------------------------------------------------------------------------
# package installation (root + apt-get only)

can_apt() {
  [[ $EUID -eq 0 ]] && have apt-get
}

apt_lists_empty() {
  ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

apt_update() {
  note "running apt-get update ..."
  tmo 600 env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    >>"$STATE_DIR/apt.log" 2>&1 9>&-
}

apt_try_install() {
  tmo 1800 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends -o DPkg::Lock::Timeout=120 "$@" \
    >>"$STATE_DIR/apt.log" 2>&1 9>&-
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

# apt_install PKG... : install the Debian packages that are not installed yet
# (never upgrades installed ones); apt-get update only when the lists are
# empty or the install failed for lack of (fresh) package lists.
apt_install() {
  can_apt || return 1
  local p
  local -a want=()
  for p in "$@"; do
    pkg_installed "$p" || want+=("$p")
  done
  ((${#want[@]} > 0)) || return 0
  set -- "${want[@]}"
  note "installing $* (apt-get, log: $STATE_DIR/apt.log) ..."
  if apt_lists_empty; then
    apt_update || true
  fi
  local mark
  touch "$STATE_DIR/apt.log"
  mark=$(wc -l <"$STATE_DIR/apt.log")
  if apt_try_install "$@"; then
    return 0
  fi
  if tail -n "+$((mark + 1))" -- "$STATE_DIR/apt.log" |
    grep -E 'Unable to locate package|has no installation candidate|Failed to fetch|404 +Not Found|is not available' >/dev/null; then
    if apt_update && apt_try_install "$@"; then
      return 0
    fi
  fi
  log_tail "$STATE_DIR/apt.log"
  return 1
}

# missing NAME ADDRESS DEBIAN_PACKAGES GENERIC : step 4 - tell what to install.
missing() {
  local name=$1 addr=$2 debs=$3 generic=$4
  {
    printf '%s: nothing answers on %s and the server is not installed.\n' "$name" "$addr"
    printf '  Debian/Ubuntu: sudo apt-get install %s\n' "$debs"
    printf '  elsewhere:     install %s\n' "$generic"
    if have apt-get && [[ $EUID -ne 0 ]]; then
      printf '  (run this script as root and it installs the packages itself)\n'
    fi
    printf '  or point the port variable at a server that is already running.\n'
  } >&2
  exit 1
}

# ----------------------------------------------------------------------------
# Redis

redis_dir() {
  printf '%s/redis-%s\n' "$STATE_DIR" "$1"
}

redis_cluster_dir() {
  printf '%s/redis-cluster-%s\n' "$STATE_DIR" "$1"
}

redis_server_bin() {
  local b
  for b in "$(command -v redis-server 2>/dev/null || true)" /usr/bin/redis-server /usr/local/bin/redis-server /usr/sbin/redis-server; do
    if [[ -n $b && -x $b ]]; then
      printf '%s\n' "$b"
      return 0
    fi
  done
  return 1
}

# redis_ping PORT : a Redis answers PONG (redis-cli if present, else raw RESP).
redis_ping() {
  local out
  if have redis-cli; then
    out=$(tmo 5 redis-cli -h "$HOST" -p "$1" ping 2>/dev/null) || return 1
  else
    # shellcheck disable=SC2016  # expanded by the inner bash
    out=$(tmo 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "PING\r\n" >&3; IFS= read -r line <&3; printf "%s\n" "$line"' _ "$HOST" "$1" 2>/dev/null) || return 1
    out=${out#+}
  fi
  [[ ${out%$'\r'} == PONG ]]
}

redis_cli() {
  tmo 10 redis-cli -h "$HOST" "$@"
}

# redis_start PORT DIR [extra redis-server args...] : start a daemonized Redis
# and wait until it answers; prints its pid.
redis_start() {
  local port=$1 dir=$2 bin pid
  shift 2
  bin=$(redis_server_bin) || die "redis-server not found"
  make_dir "$dir"
  if ! live_pid "$dir/redis.pid" redis >/dev/null; then
    rm -f -- "$dir/redis.pid"
  fi
  if ! "$bin" --bind "$HOST" --port "$port" --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log" "$@" >"$dir/start.out" 2>&1 9>&-; then
    log_tail "$dir/start.out"
    log_tail "$dir/redis.log"
    die "redis-server on $HOST:$port did not start"
  fi
  if ! wait_until "$START_WAIT" redis_ping "$port"; then
    log_tail "$dir/redis.log"
    die "redis-server on $HOST:$port did not answer PING within ${START_WAIT}s (log: $dir/redis.log)"
  fi
  wait_until 5 live_pid "$dir/redis.pid" redis >/dev/null || true
  pid=$(pid_from_file "$dir/redis.pid") || pid='?'
  printf '%s\n' "$pid"
}

# ensure_redis_server NAME ADDRESS : make redis-server available (install when
# possible). Prints "installed" when it had to install.
ensure_redis_server() {
  redis_server_bin >/dev/null && return 0
  can_apt || missing "$1" "$2" "redis-server redis-tools" "a Redis server (redis-server and redis-cli, version 6 or newer)"
  apt_install redis-server redis-tools || die "apt-get install redis-server redis-tools failed"
  redis_server_bin >/dev/null || die "redis-server still not found after installing it"
  printf 'installed\n'
}

up_redis() {
  local port=$REDIS_PORT addr="$HOST:$REDIS_PORT" dir how pid
  dir=$(redis_dir "$port")
  if ! have redis-cli && can_apt; then
    apt_install redis-tools || true # optional: redis_ping falls back to /dev/tcp
  fi
  if redis_ping "$port"; then
    if pid=$(live_pid "$dir/redis.pid" redis); then
      report redis "$addr" "reused (started earlier by this script, pid $pid)"
    else
      report redis "$addr" "reused"
    fi
    return 0
  fi
  if port_open "$port"; then
    die "redis: $addr accepts connections but does not answer PING with PONG (a password-protected Redis or another program?); set REDIS_PORT to a free port"
  fi
  how=$(ensure_redis_server redis "$addr")
  if [[ $how == installed ]]; then
    if ! have redis-cli; then
      apt_install redis-tools || true
    fi
    # The Debian package may have started its own server on this port.
    if wait_until 3 redis_ping "$port"; then
      report redis "$addr" "installed, reused (started by the package)"
      return 0
    fi
    how="installed + started"
  else
    how=started
  fi
  pid=$(redis_start "$port" "$dir")
  report redis "$addr" "$how (pid $pid)"
}

down_redis() {
  local port=$REDIS_PORT addr="$HOST:$REDIS_PORT" dir pid
  dir=$(redis_dir "$port")
  if pid=$(live_pid "$dir/redis.pid" redis); then
    stop_pid "$pid" TERM
    rm -f -- "$dir/redis.pid"
    report redis "$addr" "stopped (pid $pid)"
  elif redis_ping "$port"; then
    report redis "$addr" "left running (not started by this script)"
  else
    report redis "$addr" "not running"
  fi
}

status_redis() {
  local port=$REDIS_PORT addr="$HOST:$REDIS_PORT" dir pid
  dir=$(redis_dir "$port")
  if redis_ping "$port"; then
    if pid=$(live_pid "$dir/redis.pid" redis); then
      report redis "$addr" "answering, started by this script (pid $pid)"
    else
      report redis "$addr" "answering, reused (not started by this script)"
    fi
  elif pid=$(live_pid "$dir/redis.pid" redis); then
    report redis "$addr" "NOT answering (our pid $pid is alive; log: $dir/redis.log)"
  else
    report redis "$addr" "not answering"
  fi
}

# ----------------------------------------------------------------------------
# Redis cluster (three masters, no replicas)

cluster_ports() {
  local p
  # shellcheck disable=SC2086  # word splitting of the port list is intended
  for p in $REDIS_CLUSTER_PORTS; do
    printf '%s\n' "$p"
  done
}

cluster_addr() {
  local ports
  ports=$(cluster_ports | paste -sd, -)
  printf '%s:%s\n' "$HOST" "$ports"
}

# cluster_field PORT FIELD : value of FIELD in CLUSTER INFO of that node.
cluster_field() {
  local out
  out=$(redis_cli -p "$1" cluster info 2>/dev/null) || return 1
  out=$(printf '%s\n' "$out" | tr -d '\r' | sed -n "s/^$2://p")
  [[ -n $out ]] || return 1
  printf '%s\n' "$out"
}

cluster_ok() {
  local p state
  while read -r p; do
    state=$(cluster_field "$p" cluster_state) || return 1
    [[ $state == ok ]] || return 1
  done < <(cluster_ports)
}

cluster_pids() {
  local p pid pids=()
  while read -r p; do
    if pid=$(live_pid "$(redis_cluster_dir "$p")/redis.pid" redis); then
      pids+=("$pid")
    fi
  done < <(cluster_ports)
  printf '%s\n' "${pids[*]:-}"
}

up_redis_cluster() {
  local addr p dir how pids installed info
  local -a ports nodes
  mapfile -t ports < <(cluster_ports)
  ((${#ports[@]} >= 3)) || die "REDIS_CLUSTER_PORTS needs at least three ports (got: '$REDIS_CLUSTER_PORTS')"
  addr=$(cluster_addr)
  if ! have redis-cli; then
    if can_apt; then
      apt_install redis-tools || die "apt-get install redis-tools failed"
    fi
    have redis-cli || die "redis-cluster needs redis-cli: install it (Debian/Ubuntu: apt-get install redis-tools)"
  fi
  if cluster_ok; then
    pids=$(cluster_pids)
    report redis-cluster "$addr" "reused${pids:+ (started earlier by this script, pids $pids)}"
    return 0
  fi

  # Check every port before starting anything.
  how=started
  for p in "${ports[@]}"; do
    if redis_ping "$p"; then
      info=$(redis_cli -p "$p" info cluster 2>/dev/null || true)
      if [[ $info != *cluster_enabled:1* ]]; then
        die "redis-cluster: $HOST:$p answers but is a Redis without cluster mode; change REDIS_CLUSTER_PORTS"
      fi
    elif port_open "$p"; then
      die "redis-cluster: $HOST:$p accepts connections but is not a Redis answering PONG; change REDIS_CLUSTER_PORTS"
    else
      installed=$(ensure_redis_server redis-cluster "$addr")
      if [[ $installed == installed ]]; then
        how="installed + started"
      fi
    fi
  done
  for p in "${ports[@]}"; do
    dir=$(redis_cluster_dir "$p")
    if redis_ping "$p"; then
      continue
    fi
    redis_start "$p" "$dir" --cluster-enabled yes \
      --cluster-config-file "$dir/nodes-$p.conf" --cluster-node-timeout 2000 >/dev/null
  done

  # Form the cluster unless the nodes already know their slots (restart with
  # existing nodes-P.conf files: they find each other again by themselves).
  if [[ $(cluster_field "${ports[0]}" cluster_slots_assigned || echo 0) == 0 ]]; then
    nodes=()
    for p in "${ports[@]}"; do
      nodes+=("$HOST:$p")
    done
    if ! tmo 120 redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >"$STATE_DIR/redis-cluster-create.log" 2>&1; then
      log_tail "$STATE_DIR/redis-cluster-create.log"
      die "redis-cli --cluster create failed"
    fi
  fi
  if ! wait_until "$START_WAIT" cluster_ok; then
    redis_cli -p "${ports[0]}" cluster info >&2 || true
    die "redis-cluster did not reach cluster_state:ok within ${START_WAIT}s (if old nodes-*.conf files disagree: scripts/services.sh down redis-cluster, then remove $STATE_DIR/redis-cluster-*)"
  fi
  pids=$(cluster_pids)
  report redis-cluster "$addr" "$how${pids:+ (pids $pids)}"
}

down_redis_cluster() {
  local addr p dir pid stopped=() others=0
  addr=$(cluster_addr)
  while read -r p; do
    dir=$(redis_cluster_dir "$p")
    if pid=$(live_pid "$dir/redis.pid" redis); then
      stop_pid "$pid" TERM
      rm -f -- "$dir/redis.pid"
      stopped+=("$pid")
    elif redis_ping "$p"; then
      others=$((others + 1))
    fi
  done < <(cluster_ports)
  if ((${#stopped[@]} > 0)); then
    report redis-cluster "$addr" "stopped (pids ${stopped[*]})"
  elif ((others > 0)); then
    report redis-cluster "$addr" "left running (not started by this script)"
  else
    report redis-cluster "$addr" "not running"
  fi
}

status_redis_cluster() {
  local addr p answering=0 total=0 state pids
  addr=$(cluster_addr)
  while read -r p; do
    total=$((total + 1))
    if redis_ping "$p"; then
      answering=$((answering + 1))
    fi
  done < <(cluster_ports)
  pids=$(cluster_pids)
  if ((answering == 0)); then
    report redis-cluster "$addr" "not answering${pids:+ (our pids alive: $pids)}"
    return 0
  fi
  state=$(cluster_field "$(cluster_ports | head -n 1)" cluster_state 2>/dev/null || echo '?')
  if [[ -n $pids ]]; then
    report redis-cluster "$addr" "answering $answering/$total, cluster_state:$state, started by this script (pids $pids)"
  else
    report redis-cluster "$addr" "answering $answering/$total, cluster_state:$state, reused (not started by this script)"
  fi
}

# ----------------------------------------------------------------------------
# PostgreSQL

PSQL=
PG_ISREADY=

pg_dir() {
  printf '%s/postgres-%s\n' "$STATE_DIR" "$PG_PORT"
}

# pg_bindirs : server bin folders, newest version first.
pg_bindirs() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
      printf '%s\n' "$d"
    fi
  done | sort -t/ -k5,5Vr
  if have pg_ctl && have initdb; then
    dirname -- "$(command -v pg_ctl)"
  fi
  return 0
}

pg_bindir() {
  local d
  d=$(pg_bindirs | head -n 1)
  [[ -n $d ]] || return 1
  printf '%s\n' "$d"
}

# pg_tool NAME : a client program (PATH first, then the server bin folders).
pg_tool() {
  local d
  if have "$1"; then
    command -v "$1"
    return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x $d/$1 ]]; then
      printf '%s\n' "$d/$1"
    fi
  done | sort -t/ -k5,5Vr | head -n 1 | grep .
}

find_pg_client() {
  PSQL=$(pg_tool psql || true)
  PG_ISREADY=$(pg_tool pg_isready || true)
  [[ -n $PSQL && -n $PG_ISREADY ]]
}

ensure_pg_client() {
  find_pg_client && return 0
  if can_apt; then
    apt_install postgresql-client || true
  fi
  find_pg_client
}

pg_isready_rc() {
  local rc=0
  tmo 10 "$PG_ISREADY" -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -t 3 >/dev/null 2>&1 || rc=$?
  printf '%s\n' "$rc"
}

# pg_login : print psql's answer to "select 1" as postgres without password
# (no PGPASSWORD, no ~/.pgpass: /dev/null/x can never exist).
pg_login() {
  tmo 15 env -u PGPASSWORD PGPASSFILE=/dev/null/pgpass PGCONNECT_TIMEOUT=5 \
    "$PSQL" -X -w -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -Atc 'select 1'
}

# pg_state : ok | noauth | other | down
pg_state() {
  local rc out
  rc=$(pg_isready_rc)
  case $rc in
    0 | 1)
      if out=$(pg_login 2>/dev/null) && [[ $out == 1 ]]; then
        echo ok
      elif [[ $rc == 1 ]] && wait_until 15 pg_accepting; then
        pg_state
      else
        echo noauth
      fi
      ;;
    *)
      if port_open "$PG_PORT"; then echo other; else echo down; fi
      ;;
  esac
}

pg_accepting() {
  [[ $(pg_isready_rc) == 0 ]]
}

pg_ready_and_login() {
  pg_accepting && [[ $(pg_login 2>/dev/null || true) == 1 ]]
}

pg_auth_die() {
  local err other=5440
  if [[ $PG_PORT == 5440 ]]; then other=5441; fi
  err=$(pg_login 2>&1 | head -n 3 || true)
  {
    printf 'postgres: a PostgreSQL server answers on %s:%s, but logging in as user "postgres"\n' "$HOST" "$PG_PORT"
    printf '  without a password fails:\n'
    printf '    %s\n' "$err"
    printf '  This project needs passwordless (trust) access for user postgres over TCP, e.g. in pg_hba.conf:\n'
    printf '    host  all  all  127.0.0.1/32  trust\n'
    printf '  then reload that server - or set PG_PORT to a free port (e.g. PG_PORT=%s) and this\n' "$other"
    printf '  script starts its own PostgreSQL there.\n'
  } >&2
  exit 1
}

# as_pg DIR CMD... : run CMD in DIR as the postgres OS user (PostgreSQL refuses
# to run as root); as a normal user just run it.
as_pg() {
  local dir=$1
  shift
  if [[ $EUID -ne 0 ]]; then
    (cd -- "$dir" && "$@")
  elif have runuser; then
    (cd -- "$dir" && runuser -u postgres -- "$@")
  else
    (cd -- "$dir" && su -s /bin/sh postgres -c "$(printf '%q ' "$@")")
  fi
}

pg_conf_quote() {
  local s=$1
  printf "'%s'" "${s//\'/\'\'}"
}

# pg_start HOW : initdb if needed, write config, start, wait.
pg_start() {
  local how=$1 port=$PG_PORT dir data run log bindir ver pid out sockdir
  dir=$(pg_dir)
  data="$dir/data"
  run="$dir/run"
  log="$dir/postgres.log"
  make_dir "$dir" "$run"

  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "postgres: the OS user 'postgres' does not exist (PostgreSQL cannot run as root); install the postgresql package or create that user"
    chown postgres:postgres -- "$dir" "$run"
    if [[ -e $log ]]; then chown postgres:postgres -- "$log"; fi
    if ! as_pg / test -x "$dir" -a -w "$dir"; then
      die "postgres: the OS user 'postgres' cannot reach $dir (a parent folder is not searchable by other users); set STATE_DIR to a folder under e.g. /tmp or /var/tmp"
    fi
  fi

  if [[ -s $data/PG_VERSION ]]; then
    ver=$(tr -dc '0-9.' <"$data/PG_VERSION")
    if [[ -x /usr/lib/postgresql/$ver/bin/pg_ctl ]]; then
      bindir=/usr/lib/postgresql/$ver/bin
    else
      bindir=$(pg_bindir) || die "postgres: no PostgreSQL server binaries found"
      if [[ $("$bindir/postgres" --version | sed -nE 's/^[^0-9]*([0-9]+).*/\1/p') != "${ver%%.*}" ]]; then
        die "postgres: $data was created by PostgreSQL $ver, which is not installed; remove that folder (its data is lost) or install PostgreSQL $ver"
      fi
    fi
  else
    bindir=$(pg_bindir) || die "postgres: no PostgreSQL server binaries found"
    if [[ -e $data ]] && [[ -n $(ls -A -- "$data" 2>/dev/null) ]]; then
      die "postgres: $data exists but holds no PostgreSQL cluster; remove it"
    fi
    if ! as_pg "$dir" "$bindir/initdb" -D "$data" --auth=trust -U postgres \
      --encoding=UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
      log_tail "$dir/initdb.log"
      die "postgres: initdb failed (log: $dir/initdb.log)"
    fi
    printf "\n# added by scripts/services.sh\ninclude_if_exists = 'services.conf'\n" >>"$data/postgresql.conf"
  fi

  # Unix socket inside the state folder unless the path is too long for
  # sockaddr_un (108 bytes); then TCP only.
  sockdir=$run
  if ((${#run} + ${#port} + 12 >= 100)); then
    note "postgres: $run is too long for a Unix socket path; TCP only"
    sockdir=
  fi
  {
    printf '# written by scripts/services.sh on every start\n'
    printf "listen_addresses = '%s'\n" "$HOST"
    printf 'port = %s\n' "$port"
    printf 'unix_socket_directories = %s\n' "$(pg_conf_quote "$sockdir")"
    printf 'max_connections = 200\n'
  } >"$data/services.conf"
  cat >"$data/pg_hba.conf" <<'EOF'
# written by scripts/services.sh: no passwords, loopback and local socket only
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
EOF
  if [[ $EUID -eq 0 ]]; then
    chown postgres:postgres -- "$data/services.conf" "$data/pg_hba.conf"
  fi
  chmod 600 -- "$data/services.conf" "$data/pg_hba.conf"

  if as_pg "$dir" "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    note "postgres: a server from $data is already running; waiting for it"
  elif ! out=$(as_pg "$dir" "$bindir/pg_ctl" -D "$data" -l "$log" -w -t "$START_WAIT" start 2>&1 9>&-); then
    note "$out"
    log_tail "$log"
    die "postgres: pg_ctl start failed (log: $log)"
  fi
  if ! wait_until "$START_WAIT" pg_ready_and_login; then
    log_tail "$log"
    die "postgres: server on $HOST:$port did not accept logins within ${START_WAIT}s (log: $log)"
  fi
  pid=$(pid_from_file "$data/postmaster.pid") || pid='?'
  report postgres "$HOST:$port" "$how (pid $pid)"
}

# list the Debian clusters: "<ver>/<name>" per line
debian_clusters() {
  local c
  for c in /etc/postgresql/*/*/postgresql.conf; do
    [[ -f $c ]] || continue
    c=${c#/etc/postgresql/}
    printf '%s\n' "${c%/postgresql.conf}"
  done
}

up_postgres() {
  local addr="$HOST:$PG_PORT" dir pid state before c port
  dir=$(pg_dir)
  if ensure_pg_client; then
    state=$(pg_state)
    case $state in
      ok)
        if pid=$(live_pid "$dir/data/postmaster.pid" postgres); then
          report postgres "$addr" "reused (started earlier by this script, pid $pid)"
        else
          report postgres "$addr" "reused"
        fi
        return 0
        ;;
      noauth) pg_auth_die ;;
      other) die "postgres: $addr accepts connections but is not a PostgreSQL server; set PG_PORT to a free port" ;;
    esac
  elif port_open "$PG_PORT"; then
    die "postgres: something listens on $addr but psql/pg_isready are not installed to check it; install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client) or set PG_PORT to a free port"
  fi

  if pg_bindir >/dev/null; then
    find_pg_client || die "postgres: psql/pg_isready not found (install postgresql-client)"
    pg_start started
    return 0
  fi

  can_apt || missing postgres "$addr" "postgresql postgresql-client" "a PostgreSQL server (initdb, pg_ctl, postgres) and client (psql, pg_isready)"
  before=$(debian_clusters)
  apt_install postgresql postgresql-client || die "apt-get install postgresql postgresql-client failed"
  pg_bindir >/dev/null || die "postgres: server binaries still not found after installing postgresql"
  find_pg_client || die "postgres: psql/pg_isready still not found after installing postgresql-client"

  # The package may have created (and started) its own cluster, with peer /
  # scram auth. If that one now sits on our port, stop it and run our own.
  state=$(pg_state)
  case $state in
    ok)
      report postgres "$addr" "installed, reused (started by the package)"
      return 0
      ;;
    noauth)
      while read -r c; do
        [[ -n $c ]] || continue
        grep -qxF -- "$c" <<<"$before" && continue
        port=$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "/etc/postgresql/$c/postgresql.conf" | tail -n 1)
        if [[ ${port:-5432} == "$PG_PORT" ]]; then
          note "postgres: stopping the cluster $c that the package just created on port $PG_PORT"
          tmo 60 pg_ctlcluster "${c%%/*}" "${c#*/}" stop >/dev/null 2>&1 9>&- || true
        fi
      done <<<"$(debian_clusters)"
      if ! wait_until 15 pg_port_free; then
        pg_auth_die
      fi
      ;;
    other) die "postgres: $addr accepts connections but is not a PostgreSQL server; set PG_PORT to a free port" ;;
  esac
  pg_start "installed + started"
}

pg_port_free() {
  ! port_open "$PG_PORT"
}

down_postgres() {
  local addr="$HOST:$PG_PORT" dir data pid ver bindir=
  dir=$(pg_dir)
  data="$dir/data"
  if pid=$(live_pid "$data/postmaster.pid" postgres); then
    ver=$(tr -dc '0-9.' <"$data/PG_VERSION" 2>/dev/null || true)
    if [[ -n $ver && -x /usr/lib/postgresql/$ver/bin/pg_ctl ]]; then
      bindir=/usr/lib/postgresql/$ver/bin
    else
      bindir=$(pg_bindir || true)
    fi
    if [[ -z $bindir ]] ||
      ! as_pg "$dir" "$bindir/pg_ctl" -D "$data" -m fast -w -t "$STOP_WAIT" stop >/dev/null 2>&1; then
      stop_pid "$pid" INT
    fi
    report postgres "$addr" "stopped (pid $pid)"
  elif find_pg_client && [[ $(pg_isready_rc) == 0 ]]; then
    report postgres "$addr" "left running (not started by this script)"
  else
    report postgres "$addr" "not running"
  fi
}

status_postgres() {
  local addr="$HOST:$PG_PORT" dir pid rc owner
  dir=$(pg_dir)
  if pid=$(live_pid "$dir/data/postmaster.pid" postgres); then
    owner="started by this script (pid $pid)"
  else
    owner="reused (not started by this script)"
  fi
  if ! find_pg_client; then
    if port_open "$PG_PORT"; then
      report postgres "$addr" "port open (psql not installed, cannot check), $owner"
    else
      report postgres "$addr" "not answering"
    fi
    return 0
  fi
  rc=$(pg_isready_rc)
  if [[ $rc == 0 || $rc == 1 ]]; then
    if [[ $(pg_login 2>/dev/null || true) == 1 ]]; then
      report postgres "$addr" "answering, $owner"
    else
      report postgres "$addr" "answering but login as postgres without password FAILS, $owner"
    fi
  elif [[ -n ${pid:-} ]]; then
    report postgres "$addr" "NOT answering (our pid $pid is alive; log: $dir/postgres.log)"
  else
    report postgres "$addr" "not answering"
  fi
}

# ----------------------------------------------------------------------------
# ClickHouse

ch_dir() {
  printf '%s/clickhouse-%s\n' "$STATE_DIR" "$CLICKHOUSE_HTTP_PORT"
}

ch_server_bin() {
  local b
  for b in "$(command -v clickhouse-server 2>/dev/null || true)" /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
    if [[ -n $b && -x $b ]]; then
      printf '%s\n' "$b"
      return 0
    fi
  done
  return 1
}

# ch_http PORT PATH : body of GET http://127.0.0.1:PORT/PATH (curl or /dev/tcp).
ch_http() {
  if have curl; then
    curl -fsS --max-time 5 "http://$HOST:$1$2" 2>/dev/null
    return
  fi
  # shellcheck disable=SC2016  # expanded by the inner bash
  tmo 5 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3
    cat <&3' _ "$HOST" "$1" "$2" 2>/dev/null | tr -d '\r' | sed '1,/^$/d'
}

ch_ping() {
  [[ $(ch_http "$1" /ping || true) == "Ok." ]]
}

xml_escape() {
  local s=$1
  s=${s//&/&amp;}
  s=${s//</&lt;}
  s=${s//>/&gt;}
  printf '%s' "$s"
}

# render TEMPLATE OUT KEY=VALUE... : replace @KEY@ placeholders.
render() {
  local tpl=$1 out=$2 text kv
  shift 2
  [[ -f $tpl ]] || die "template $tpl is missing"
  text=$(<"$tpl")
  for kv in "$@"; do
    text=${text//"@${kv%%=*}@"/"${kv#*=}"}
  done
  printf '%s\n' "$text" >"$out"
}

# ch_major BIN : major version of the server, or 0 when it cannot tell
# (18.16 has no --version option).
ch_major() {
  local v
  v=$(tmo 10 "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+' | head -n 1 || true)
  printf '%s\n' "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}

ch_start() {
  local how=$1 http=$CLICKHOUSE_HTTP_PORT tcp=$CLICKHOUSE_TCP_PORT bin dir pidfile pid mem='' version
  bin=$(ch_server_bin) || die "clickhouse-server not found"
  dir=$(ch_dir)
  pidfile="$dir/clickhouse-server.pid"
  make_dir "$dir" "$dir/log" "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"

  # max_server_memory_usage exists since 20.x; 18.16 does not know it (it
  # only has the per-query/per-user settings in users.xml).
  if (($(ch_major "$bin") >= 20)); then
    mem='    <max_server_memory_usage>2147483648</max_server_memory_usage>'
  fi
  render "$TEMPLATE_DIR/clickhouse-config.xml" "$dir/config.xml" \
    "DIR=$(xml_escape "$dir")" "HTTP_PORT=$http" "TCP_PORT=$tcp" "MEMORY_LIMIT=$mem"
  render "$TEMPLATE_DIR/clickhouse-users.xml" "$dir/users.xml"

  if pid=$(live_pid "$pidfile" clickhouse); then
    note "clickhouse: our server (pid $pid) is running but not answering yet; waiting"
  else
    rm -f -- "$pidfile"
    if ! (cd -- "$dir" && "$bin" --config-file="$dir/config.xml" --pid-file="$pidfile" --daemon) \
      >"$dir/log/start.out" 2>&1 9>&-; then
      log_tail "$dir/log/start.out"
      log_tail "$dir/log/clickhouse-server.err.log"
      die "clickhouse-server did not start"
    fi
  fi
  if ! wait_until "$START_WAIT" ch_started "$http" "$pidfile"; then
    log_tail "$dir/log/clickhouse-server.err.log"
    log_tail "$dir/log/stderr.log"
    die "clickhouse-server on $HOST:$http did not answer /ping within ${START_WAIT}s (logs: $dir/log/)"
  fi
  ch_ping "$http" || {
    log_tail "$dir/log/clickhouse-server.err.log"
    log_tail "$dir/log/stderr.log"
    die "clickhouse-server on $HOST:$http exited during startup (logs: $dir/log/)"
  }
  version=$(ch_http "$http" '/?query=SELECT%20version()' || true)
  [[ -n $version ]] || die "clickhouse on $HOST:$http answers /ping but not SELECT version()"
  pid=$(pid_from_file "$pidfile") || pid='?'
  report clickhouse "$HOST:$http" "$how (pid $pid, version $version, tcp $tcp)"
}

# done waiting when it answers, or when its pid file names a dead process
ch_started() {
  local pid
  ch_ping "$1" && return 0
  if pid=$(pid_from_file "$2") && pid_gone "$pid"; then
    return 0
  fi
  return 1
}

up_clickhouse() {
  local http=$CLICKHOUSE_HTTP_PORT tcp=$CLICKHOUSE_TCP_PORT addr dir pid version how
  addr="$HOST:$http"
  dir=$(ch_dir)
  if ! have curl && can_apt; then
    apt_install curl || true
  fi
  if ch_ping "$http"; then
    version=$(ch_http "$http" '/?query=SELECT%20version()' || true)
    if pid=$(live_pid "$dir/clickhouse-server.pid" clickhouse); then
      report clickhouse "$addr" "reused (started earlier by this script, pid $pid, version ${version:-?})"
    else
      report clickhouse "$addr" "reused (version ${version:-?})"
    fi
    return 0
  fi
  if port_open "$http"; then
    die "clickhouse: $addr accepts connections but GET /ping does not answer 'Ok.'; set CLICKHOUSE_HTTP_PORT to a free port"
  fi
  if port_open "$tcp" && ! live_pid "$dir/clickhouse-server.pid" clickhouse >/dev/null; then
    die "clickhouse: the native port $HOST:$tcp is already in use by another program; set CLICKHOUSE_TCP_PORT to a free port"
  fi

  how=started
  if ! ch_server_bin >/dev/null; then
    can_apt || missing clickhouse "$addr" "clickhouse-server clickhouse-client" "a ClickHouse server (clickhouse-server, HTTP interface) and clickhouse-client"
    apt_install clickhouse-server clickhouse-client || die "apt-get install clickhouse-server clickhouse-client failed"
    ch_server_bin >/dev/null || die "clickhouse-server still not found after installing it"
    if wait_until 3 ch_ping "$http"; then
      report clickhouse "$addr" "installed, reused (started by the package)"
      return 0
    fi
    how="installed + started"
  fi
  ch_start "$how"
}

down_clickhouse() {
  local addr="$HOST:$CLICKHOUSE_HTTP_PORT" dir pid
  dir=$(ch_dir)
  if pid=$(live_pid "$dir/clickhouse-server.pid" clickhouse); then
    stop_pid "$pid" TERM
    rm -f -- "$dir/clickhouse-server.pid"
    report clickhouse "$addr" "stopped (pid $pid)"
  elif ch_ping "$CLICKHOUSE_HTTP_PORT"; then
    report clickhouse "$addr" "left running (not started by this script)"
  else
    report clickhouse "$addr" "not running"
  fi
}

status_clickhouse() {
  local addr="$HOST:$CLICKHOUSE_HTTP_PORT" dir pid version
  dir=$(ch_dir)
  if ch_ping "$CLICKHOUSE_HTTP_PORT"; then
    version=$(ch_http "$CLICKHOUSE_HTTP_PORT" '/?query=SELECT%20version()' || true)
    if pid=$(live_pid "$dir/clickhouse-server.pid" clickhouse); then
      report clickhouse "$addr" "answering (version ${version:-?}), started by this script (pid $pid)"
    else
      report clickhouse "$addr" "answering (version ${version:-?}), reused (not started by this script)"
    fi
  elif pid=$(live_pid "$dir/clickhouse-server.pid" clickhouse); then
    report clickhouse "$addr" "NOT answering (our pid $pid is alive; logs: $dir/log/)"
  else
    report clickhouse "$addr" "not answering"
  fi
}

# ----------------------------------------------------------------------------
# PgBouncer (the RDS Proxy stand-in)

# shellcheck source=services/pgbouncer.sh
source "$SCRIPT_DIR/services/pgbouncer.sh"
# shellcheck source=services/chromium.sh
source "$SCRIPT_DIR/services/chromium.sh"

# ----------------------------------------------------------------------------
# main

# targets DEFAULT... -- ARGS... : expand/validate the server names.
targets() {
  local -a defaults=() out=()
  local a
  while (($# > 0)) && [[ $1 != -- ]]; do
    defaults+=("$1")
    shift
  done
  shift
  if (($# == 0)); then
    set -- "${defaults[@]}"
  fi
  for a in "$@"; do
    case $a in
      all) out+=(redis postgres clickhouse redis-cluster pgbouncer) ;;
      redis | postgres | clickhouse | redis-cluster | pgbouncer | chromium) out+=("$a") ;;
      *)
        usage >&2
        die "unknown server '$a'"
        ;;
    esac
  done
  # de-duplicate, keep order
  printf '%s\n' "${out[@]}" | awk '!seen[$0]++'
}

lock_state() {
  make_dir "$STATE_DIR"
  if have flock; then
    exec 9>"$STATE_DIR/.lock"
    flock -w 600 9 || die "another scripts/services.sh is still running (lock $STATE_DIR/.lock)"
  fi
}

main() {
  local cmd=${1:-} name
  local -a names
  if (($# > 0)); then shift; fi

  check_port REDIS_PORT "$REDIS_PORT"
  check_port PG_PORT "$PG_PORT"
  check_port CLICKHOUSE_HTTP_PORT "$CLICKHOUSE_HTTP_PORT"
  check_port CLICKHOUSE_TCP_PORT "$CLICKHOUSE_TCP_PORT"
  while read -r name; do
    check_port REDIS_CLUSTER_PORTS "$name"
  done < <(cluster_ports)
  check_port PGBOUNCER_PORT "${PGBOUNCER_PORT:-6432}"

  case $cmd in
    up)
      mapfile -t names < <(targets redis postgres clickhouse -- "$@")
      ((${#names[@]} > 0)) || exit 2
      lock_state
      for name in "${names[@]}"; do
        case $name in
          redis) up_redis ;;
          postgres) up_postgres ;;
          clickhouse) up_clickhouse ;;
          redis-cluster) up_redis_cluster ;;
          pgbouncer) up_pgbouncer ;;
          chromium) up_chromium ;;
        esac
      done
      ;;
    down)
      mapfile -t names < <(targets all -- "$@")
      ((${#names[@]} > 0)) || exit 2
      lock_state
      for name in "${names[@]}"; do
        case $name in
          redis) down_redis ;;
          postgres) down_postgres ;;
          clickhouse) down_clickhouse ;;
          redis-cluster) down_redis_cluster ;;
          pgbouncer) down_pgbouncer ;;
          chromium) down_chromium ;;
        esac
      done
      ;;
    status)
      (($# == 0)) || {
        usage >&2
        exit 2
      }
      status_redis
      status_postgres
      status_clickhouse
      status_redis_cluster
      status_pgbouncer
      status_chromium
      ;;
    -h | --help | help)
      usage
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
