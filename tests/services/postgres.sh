#!/usr/bin/env bash
# A real PostgreSQL for the tests: Debian's `postgresql` (installed if missing), a new cluster
# made by `initdb` as the `postgres` user in a temporary directory, served by `pg_ctl` on a free
# loopback port (trust authentication, loopback only: a throwaway test server).
#
#   tests/services/postgres.sh start   prints `VOUCH_TEST_POSTGRES=postgres://…` and the
#                                      cluster's directory as `VOUCH_TEST_POSTGRES_DIR=…`
#   tests/services/postgres.sh stop DIR
#
# Each test then makes a database of its own on this server (crates/vouch-store/tests/common).
set -euo pipefail
cmd="${1:-start}"

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/pg_ctl" ]] && { echo "$d"; return; }
  done
  return 1
}

as_postgres() {
  if [[ "$(id -un)" == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

case "$cmd" in
start)
  if ! pg_bin >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
  bin="$(pg_bin)"
  dir="$(mktemp -d /tmp/vouch-pg.XXXXXX)"
  chown postgres: "$dir"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # Room for several nodes' pools and the cluster tests; fsync stays on (durability is tested).
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start \
    -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=300" >&2
  echo "VOUCH_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
  echo "VOUCH_TEST_POSTGRES_DIR=$dir"
  ;;
stop)
  dir="${2:?stop needs the cluster directory}"
  bin="$(pg_bin)"
  as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
