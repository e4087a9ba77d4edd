#!/usr/bin/env bash
# Prints the URL of a PostgreSQL server for the fleet tests, starting a throwaway cluster when none answers.
# The cluster lives in ${KDL_TEST_PG_DIR:-/tmp/kdl-test-pg}, listens on 127.0.0.1:${KDL_TEST_PG_PORT:-55432}
# only, runs with fsync=off (tests only, never for a real fleet) and trusts local connections. Tests create and
# drop their own schema in it, so it can be shared by parallel tests and reused between runs. A URL already in
# KDL_TEST_PG is printed unchanged. Needs Debian's postgresql package (scripts/setup.sh --test installs it).
set -euo pipefail
say() { printf '==> %s\n' "$*" >&2; }

if [ -n "${KDL_TEST_PG:-}" ]; then
  printf '%s\n' "$KDL_TEST_PG"
  exit 0
fi
port="${KDL_TEST_PG_PORT:-55432}"
dir="${KDL_TEST_PG_DIR:-/tmp/kdl-test-pg}"
url="postgres://postgres@127.0.0.1:${port}/postgres"

bin=""
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && bin="$d"
done
if [ -z "$bin" ]; then
  say "PostgreSQL is not installed (run scripts/setup.sh --test as root, or apt-get install postgresql)"
  exit 1
fi

ready() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; }
if ready; then
  printf '%s\n' "$url"
  exit 0
fi

# initdb and postgres refuse to run as root: run them as the postgres user when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  say "creating a throwaway PostgreSQL cluster in $dir/data"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi
say "starting PostgreSQL on 127.0.0.1:$port (log: $dir/server.log)"
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -k $dir -c max_connections=200" \
  start >/dev/null || { tail -n 20 "$dir/server.log" >&2; exit 1; }
ready || { say "PostgreSQL did not answer on 127.0.0.1:$port"; exit 1; }
printf '%s\n' "$url"
