#!/usr/bin/env bash
# Make sure the system packages the test suite runs for real are present:
# Chromium (browser tests), PostgreSQL's server (database tests) and podman,
# runc and debootstrap (the container image's test, scripts/container-test.sh).
# As root on Debian it installs what is missing; otherwise it says what to install.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" ]] || missing+=("$tool")
done
((${#missing[@]})) || exit 0

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "test-system-deps: installing ${missing[*]} from Debian's packages" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
else
  echo "test-system-deps: please install ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
