# A throwaway PostgreSQL cluster on 127.0.0.1, shared by scripts/test and
# scripts/bench-load. Source scripts/lib/common.sh first, and set BASE_PYTHON
# (free_port uses it). setup_postgres starts the cluster and exports
# TESSERA_TEST_POSTGRES_URL; the caller's exit trap must call stop_postgres
# and remove "$PG_TMP". PG_DURABLE=1 keeps fsync on.

PG_TMP=""
PG_DATA=""
PG_BIN=""
PG_OS_USER=""
PG_MAYBE_RUNNING=0

# Runs a command as the cluster's owner: PostgreSQL refuses to run as root.
# `cd /` because that user may not be allowed into the caller's directory.
as_pg() {
  if [[ -z $PG_OS_USER ]]; then
    "$@"
  elif command -v runuser >/dev/null; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    (cd / && su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")")
  fi
}

stop_postgres() {
  [[ $PG_MAYBE_RUNNING == 1 ]] || return 0
  as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null 2>&1 ||
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 >/dev/null 2>&1 ||
    true
  PG_MAYBE_RUNNING=0
}

# --- PostgreSQL ----------------------------------------------------------
# Newest Debian server install first; otherwise whatever initdb is on PATH
# (other distributions, Homebrew).
find_pg_bin() {
  local f dirs=()
  for f in /usr/lib/postgresql/*/bin/initdb; do
    [[ -x $f ]] && dirs+=("${f%/initdb}")
  done
  if ((${#dirs[@]})); then
    printf '%s\n' "${dirs[@]}" | sort -V | tail -n 1
    return 0
  fi
  if f="$(command -v initdb)" && [[ -x "$(dirname "$(readlink -f "$f")")/pg_ctl" ]]; then
    dirname "$(readlink -f "$f")"
    return 0
  fi
  return 1
}

# Client tools live beside the server on Debian, elsewhere on other systems.
pg_tool() {
  if [[ -x $PG_BIN/$1 ]]; then echo "$PG_BIN/$1"; else command -v "$1"; fi
}

free_port() {
  "$BASE_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

setup_postgres() {
  section "PostgreSQL"
  if ! PG_BIN="$(find_pg_bin)"; then
    can_install || die "PostgreSQL server not found; install it (Debian: apt-get install postgresql) or set TESSERA_TEST_SKIP_POSTGRES=1"
    note "server binaries not found, installing the postgresql package"
    # Keep the package from creating and starting a system-wide cluster:
    # the tests only use the throwaway cluster below.
    "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' |
      "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/no-main-cluster.conf >/dev/null
    apt_install postgresql || die "could not install PostgreSQL"
    PG_BIN="$(find_pg_bin)" || die "PostgreSQL installed but initdb not found"
  fi
  local psql pg_isready
  psql="$(pg_tool psql)" || die "psql not found"
  pg_isready="$(pg_tool pg_isready)" || die "pg_isready not found"
  note "server: $("$PG_BIN/postgres" --version)"

  # The server refuses to run as root: use the Debian package's postgres
  # user, or a dedicated system user where there is none.
  if [[ $IS_ROOT == 1 ]]; then
    if id -u postgres >/dev/null 2>&1; then
      PG_OS_USER=postgres
    else
      PG_OS_USER=tessera-pg
      if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent \
          --shell /usr/sbin/nologin "$PG_OS_USER"
      fi
    fi
    note "running the server as system user '$PG_OS_USER'"
  fi

  # Always under /tmp: short enough for the unix socket path, and reachable
  # by the server's user.
  PG_TMP="$(mktemp -d /tmp/tessera-pg.XXXXXX)"
  [[ -n $PG_OS_USER ]] && chown "$PG_OS_USER:" "$PG_TMP"
  PG_DATA="$PG_TMP/data"
  as_pg mkdir "$PG_TMP/sock"

  if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C >"$PG_TMP/initdb.log" 2>&1; then
    show_log "$PG_TMP/initdb.log"
    die "initdb failed"
  fi
  # Loopback only; durability is pointless for a cluster deleted on exit,
  # unless PG_DURABLE=1 (benchmarks, whose write figures must be honest).
  local durable=off
  [[ ${PG_DURABLE:-0} == 1 ]] && durable=on
  cat >>"$PG_DATA/postgresql.conf" <<EOF

# throwaway test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_TMP/sock'
max_connections = 200
fsync = $durable
synchronous_commit = $durable
full_page_writes = $durable
EOF

  # The port is picked before the server binds it, so retry on a clash.
  local port="" attempt started=0
  for attempt in 1 2 3; do
    port="$(free_port)"
    PG_MAYBE_RUNNING=1
    if as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_TMP/server.log" \
      -w -t 60 -o "-p $port" >/dev/null 2>&1; then
      started=1
      break
    fi
    note "server did not start on port $port (attempt $attempt of 3)"
    show_log "$PG_TMP/server.log" 5
    stop_postgres
  done
  [[ $started == 1 ]] || die "could not start PostgreSQL"

  local i ready=0
  for i in $(seq 1 30); do
    if "$pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
      ready=1
      break
    fi
    sleep 1
  done
  if [[ $ready != 1 ]]; then
    show_log "$PG_TMP/server.log"
    die "PostgreSQL did not become ready on 127.0.0.1:$port"
  fi

  "$psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'CREATE ROLE tessera LOGIN CREATEDB' \
    -c 'CREATE DATABASE tessera OWNER tessera' >/dev/null

  export TESSERA_TEST_POSTGRES_URL="postgres://tessera@127.0.0.1:$port/tessera"
  note "TESSERA_TEST_POSTGRES_URL=$TESSERA_TEST_POSTGRES_URL"
  PSQL="$psql"
}

