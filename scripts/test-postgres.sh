#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL server for the test suite and print
# its admin URL on stdout. `make test` calls this; set TEST_POSTGRES_URL to use
# a server of your own instead.
#
#   DORMOUSE_PG_DIR   data directory (default /tmp/dormouse-test-pg)
#   DORMOUSE_PG_PORT  port on 127.0.0.1 (default 54329)
set -euo pipefail

if [[ -n "${TEST_POSTGRES_URL:-}" ]]; then
  echo "$TEST_POSTGRES_URL"
  exit 0
fi

dir="${DORMOUSE_PG_DIR:-/tmp/dormouse-test-pg}"
port="${DORMOUSE_PG_PORT:-54329}"
url="postgresql://postgres@127.0.0.1:${port}/postgres"

find_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir
    return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

bindir="$(find_bindir)"
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "test-postgres: PostgreSQL's server is not installed (scripts/test-system-deps.sh" \
       "installs it) and TEST_POSTGRES_URL is not set" >&2
  exit 1
fi

# PostgreSQL refuses to run as root: use the postgres system user then.
as_owner=()
if [[ "$(id -u)" == 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /usr/sbin/nologin postgres
  as_owner=(runuser -u postgres --)
fi

mkdir -p "$dir"
[[ "$(id -u)" == 0 ]] && chown postgres "$dir"
chmod 700 "$dir"

if [[ ! -f "$dir/data/PG_VERSION" ]]; then
  "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi

if ! "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null
fi

for _ in $(seq 1 60); do
  if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "$url"
    exit 0
  fi
  sleep 0.5
done
echo "test-postgres: the server did not come up; see $dir/server.log" >&2
exit 1
