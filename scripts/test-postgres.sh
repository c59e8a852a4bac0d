#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite.
#
#   scripts/test-postgres.sh [start [OWNER_PID]]  start it (or reuse a running one)
#                                                 and print its admin URL on stdout
#   scripts/test-postgres.sh stop [OWNER_PID]     stop it again, if `start` started it
#                                                 and no other owner still uses it
#
# `make test` calls both around pytest with its shell's pid as OWNER_PID, so two
# runs at once do not stop the server under each other (an owner whose process
# is gone no longer counts). A server that was already running when `start`
# found it is not ours: `stop` leaves it running. With TEST_POSTGRES_URL set (a
# server of your own), `start` prints it and `stop` does nothing.
#
#   DORMOUSE_PG_DIR   data directory (default /tmp/dormouse-test-pg)
#   DORMOUSE_PG_PORT  port on 127.0.0.1 (default 54329)
set -euo pipefail

command="${1:-start}"
owner="${2:-}"
case "$command" in
  start | stop) ;;
  *)
    echo "usage: $0 [start|stop] [OWNER_PID]" >&2
    exit 2
    ;;
esac
if [[ -n "$owner" && ! "$owner" =~ ^[0-9]+$ ]]; then
  echo "test-postgres: OWNER_PID must be a process id, not '$owner'" >&2
  exit 2
fi

if [[ -n "${TEST_POSTGRES_URL:-}" ]]; then
  if [[ "$command" == start ]]; then echo "$TEST_POSTGRES_URL"; fi
  exit 0
fi

dir="${DORMOUSE_PG_DIR:-/tmp/dormouse-test-pg}"
port="${DORMOUSE_PG_PORT:-54329}"
url="postgresql://postgres@127.0.0.1:${port}/postgres"
marker="$dir/started-by-test-postgres" # there while a server that `start` started may run
owners="$dir/owners"                   # one empty file per OWNER_PID using it

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

running() {
  [[ -f "$dir/data/PG_VERSION" ]] && "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

if [[ "$command" == stop ]]; then
  [[ -d "$dir" ]] || exit 0
  if [[ -n "$owner" ]]; then rm -f "$owners/$owner"; fi
  for f in "$owners"/*; do
    [[ -e "$f" ]] || continue
    [[ -d "/proc/${f##*/}" ]] || rm -f "$f" # its process is gone
  done
  if [[ ! -f "$marker" ]]; then
    exit 0 # not started by `start`: not ours to stop
  fi
  if compgen -G "$owners/*" >/dev/null; then
    exit 0 # another run still uses it; the last one out stops it
  fi
  if running; then
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >/dev/null
  fi
  rm -f "$marker"
  exit 0
fi

mkdir -p "$dir"
[[ "$(id -u)" == 0 ]] && chown postgres "$dir"
chmod 700 "$dir"
if [[ -n "$owner" ]]; then
  mkdir -p "$owners"
  : >"$owners/$owner"
fi

if [[ ! -f "$dir/data/PG_VERSION" ]]; then
  "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi

if ! running; then
  touch "$marker"
  # Another `start` may win the race to start it: then it is running all the same.
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null || running
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
