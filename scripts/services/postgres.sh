# PostgreSQL for the store tests: a throwaway cluster on 127.0.0.1:55432 under
# $OFFBOARD_TEST_DIR/postgres. Sourced by scripts/test (see README.md here).
#
# postgres_start: installs Debian's PostgreSQL if no initdb is found, replaces a server left on
# the port by an earlier run, initialises a fresh cluster (trust auth, loopback only), starts
# it, creates the database offboard_test and exports OFFBOARD_TEST_PG_URL.
# postgres_stop: stops the server (fast shutdown).

OFFBOARD_PG_PORT="${OFFBOARD_PG_PORT:-55432}"

_pg_bin() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$initdb" ] && dirname "$initdb"
}

_pg_as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  elif [ "$(id -un)" = postgres ]; then
    "$@"
  else
    sudo -n -u postgres -- "$@"
  fi
}

_pg_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$OFFBOARD_PG_PORT") 2>/dev/null
}

postgres_start() {
  local bin dir
  bin=$(_pg_bin || true)
  if [ -z "$bin" ]; then
    echo "postgres: installing PostgreSQL (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1; then
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends postgresql >/dev/null
    fi
    bin=$(_pg_bin)
  fi
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres

  dir="$OFFBOARD_TEST_DIR/postgres"
  # A server from an earlier run on our port (this temp dir or another): stop it.
  if _pg_listening; then
    local pid data
    pid=$(ss -ltnpH "sport = :$OFFBOARD_PG_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)
    data=""
    [ -n "$pid" ] && data=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 's/.* -D \([^ ]*\).*/\1/p' || true)
    if [ -z "$data" ]; then
      # No ss/procfs answer: look for an earlier run's cluster on our port.
      local f
      for f in "$OFFBOARD_TEST_DIR"/postgres/data/postmaster.pid /tmp/*/postgres/data/postmaster.pid; do
        [ -f "$f" ] && [ "$(sed -n 4p "$f")" = "$OFFBOARD_PG_PORT" ] && data=$(dirname "$f") && break
      done
    fi
    if [ -n "$data" ] && [ -d "$data" ]; then
      _pg_as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
    fi
    if _pg_listening && [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 50); do _pg_listening || break; sleep 0.1; done
    if _pg_listening; then
      echo "postgres: port $OFFBOARD_PG_PORT is still taken" >&2
      return 1
    fi
  fi
  # A fresh cluster every time.
  if [ -d "$dir" ]; then
    _pg_as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  chown postgres "$dir"
  chmod 700 "$dir"
  _pg_as_postgres "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 \
    --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    return 1
  }
  _pg_as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $OFFBOARD_PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null || {
    cat "$dir/server.log" >&2
    return 1
  }
  _pg_as_postgres "$bin/createdb" -h 127.0.0.1 -p "$OFFBOARD_PG_PORT" -U postgres offboard_test
  export OFFBOARD_TEST_PG_URL="postgres://postgres@127.0.0.1:$OFFBOARD_PG_PORT/offboard_test"
  echo "postgres: $OFFBOARD_TEST_PG_URL"
}

postgres_stop() {
  local bin
  bin=$(_pg_bin || true)
  # Nothing to stop (never started, or already stopped): fine.
  [ -n "$bin" ] && [ -f "$OFFBOARD_TEST_DIR/postgres/data/postmaster.pid" ] || return 0
  _pg_as_postgres "$bin/pg_ctl" -D "$OFFBOARD_TEST_DIR/postgres/data" -m fast -w stop >/dev/null
}
