#!/usr/bin/env bash
# Build and run Dormouse's container image with podman, on a machine with no
# Docker engine and no image registry (tests/test_container.py drives it; the
# recipe is the one in the project's CONTAINER-TEST notes).
#
#   scripts/container-test.sh base             the base image localhost/pyslim:3.11
#   scripts/container-test.sh build            the Dockerfile on that base -> dormouse:test
#   scripts/container-test.sh run NAME PORT [PODMAN-RUN-OPTIONS...]
#   scripts/container-test.sh stop NAME        stop and remove the container
#   scripts/container-test.sh clean            remove the test image (the base and the
#                                              layer with the Python packages stay)
#   scripts/container-test.sh podman ARGS...   podman with the flags this machine needs
#
# `FROM python:3.11-slim` cannot be pulled here, so `base` makes a look-alike
# from Debian's own packages: debootstrap (minbase + python3, python3-venv,
# ca-certificates) and a venv at /usr/local, so `python` and `pip` live in
# /usr/local/bin as in the official image. What the test covers is therefore
# everything the Dockerfile does on top of its base, not the official base.
# The root file system is kept as a tarball in $CACHE, named by a hash of what
# goes into it, so later runs skip debootstrap; podman's own build cache
# (/var/lib/containers) makes a rebuild with unchanged inputs take seconds.
#
# Podman's defaults do not work in this sandbox: runc (crun refuses hybrid
# cgroups), cgroupfs, limits no higher than ours (no CAP_SYS_RESOURCE) and the
# host's network (no slirp/netavark). `run` therefore uses the host's network:
# choose the port with the image's PORT variable (there is no -p).
#
# SECRET_KEY, JWT_KEYS and TRUSTED_HOSTS are handed to `run` through this
# script's environment (podman's `-e NAME` takes the value from there), so no
# secret appears on a command line.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DORMOUSE_CONTAINER_CACHE:-/var/cache/dormouse/container-base}"
BASE_IMAGE="localhost/pyslim:3.11"
IMAGE="${DORMOUSE_TEST_IMAGE:-localhost/dormouse:test}"
CACHE_IMAGE="localhost/dormouse-build-cache:python-packages"
SUITE="bookworm"
INCLUDE="python3,python3-venv,ca-certificates"
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

say() { echo "container-test: $*" >&2; }
die() {
  say "$*"
  exit 1
}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "$tool is missing (Debian: apt-get install podman runc debootstrap; make test does it as root)"
  done
}

# The Debian mirror apt uses here (deb822 sources first, then sources.list).
mirror() {
  local uri
  uri="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v -- '-security' | head -n1 || true)"
  if [[ -z "$uri" ]]; then
    uri="$(awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ {print $2; exit}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# What goes into the base, as one short hash: the cache's name and the image's label.
base_key() {
  printf '%s\n' "$SUITE" "$INCLUDE" "$(mirror)" "venv=/usr/local v1" | sha256sum | cut -c1-16
}

cmd_base() {
  need podman runc debootstrap
  local key tarball have old
  key="$(base_key)"
  have="$("${PODMAN[@]}" image inspect --format '{{index .Config.Labels "dormouse.base"}}' "$BASE_IMAGE" \
    2>/dev/null || true)"
  if [[ "$have" == "$key" ]]; then
    return 0
  fi
  tarball="$CACHE/$key/rootfs.tar"
  if [[ ! -s "$tarball" ]]; then
    local work
    mkdir -p "$CACHE/$key"
    work="$(mktemp -d "$CACHE/$key/rootfs.XXXXXX")"
    # shellcheck disable=SC2064  # expand $work now: it is local
    trap "rm -rf '$work'" EXIT
    say "debootstrap $SUITE into $work (once; cached as $tarball)"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$work" "$(mirror)" >"$work.log" 2>&1 ||
      die "debootstrap failed; see $work.log"
    chroot "$work" python3 -m venv /usr/local
    rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*
    tar -C "$work" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$work" "$work.log"
    trap - EXIT
  fi
  say "importing $tarball as $BASE_IMAGE"
  old="$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)"
  "${PODMAN[@]}" import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL dormouse.base=$key" \
    "$tarball" "$BASE_IMAGE" >/dev/null
  forget "$old"
}

cmd_build() {
  cmd_base
  # pip inside the build reaches the package index this machine is set up for:
  # its PIP_* variables become a pip.conf mounted for the build's RUN steps
  # only (`--env` would leave them in the image). Podman passes proxies itself.
  local pipconf name key old
  old="$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  pipconf="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand $pipconf now: it is local
  trap "rm -rf '$pipconf'" EXIT
  {
    echo "[global]"
    for name in $(compgen -e); do
      [[ "$name" == PIP_* ]] || continue
      key="${name#PIP_}"
      key="${key,,}"
      echo "${key//_/-} = ${!name}"
    done
  } >"$pipconf/pip.conf"
  chmod 0755 "$pipconf"
  say "building $IMAGE"
  "${PODMAN[@]}" build --from "$BASE_IMAGE" --format docker --network=host "${LIMITS[@]}" \
    -v /etc/ssl/certs:/etc/ssl/certs:ro -v "$pipconf:/etc/xdg/pip:ro" \
    --layers -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO" | tee "$pipconf/build.log" >&2
  keep_deps_layer "$pipconf/build.log"
  rm -rf "$pipconf"
  trap - EXIT
  forget "$old"
}

# Remove the image with id $1 if no tag names it any more (a rebuild moved it).
forget() {
  [[ -n "$1" ]] || return 0
  if [[ -z "$("${PODMAN[@]}" image inspect --format '{{join .RepoTags ""}}' "$1" 2>/dev/null)" ]]; then
    "${PODMAN[@]}" rmi "$1" >/dev/null 2>&1 || true # a container still uses it: keep it
  fi
}

# `podman rmi` of the test image also deletes its untagged layers, the build
# cache included; a tag on the layer with the Python packages keeps that one
# (the slow step), so the next build only copies Dormouse's own files.
keep_deps_layer() {
  local id old
  id="$(awk '/^STEP [0-9]+\/[0-9]+: RUN pip install/ {step = 1; next}
    step && /^--> Using cache / {print substr($4, 1, 12); exit}
    step && /^--> [0-9a-f]+$/ {print $2; exit}' "$1")"
  [[ -n "$id" ]] || return 0
  old="$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$CACHE_IMAGE" 2>/dev/null || true)"
  "${PODMAN[@]}" tag "$id" "$CACHE_IMAGE"
  [[ "$old" == "$id"* ]] || forget "$old"
}

cmd_run() {
  (($# >= 2)) || die "usage: $0 run NAME PORT [PODMAN-RUN-OPTIONS...]"
  local name="$1" port="$2" env_args=() var
  shift 2
  for var in SECRET_KEY JWT_KEYS TRUSTED_HOSTS; do
    [[ -n "${!var:-}" ]] && env_args+=(-e "$var")
  done
  "${PODMAN[@]}" run -d --name "$name" --network=host "${LIMITS[@]}" \
    -e PORT="$port" "${env_args[@]}" "$@" "$IMAGE"
}

cmd_stop() {
  (($# == 1)) || die "usage: $0 stop NAME"
  "${PODMAN[@]}" stop -t 10 "$1" >/dev/null 2>&1 || true
  "${PODMAN[@]}" rm -f -v "$1" >/dev/null 2>&1 || true
  if "${PODMAN[@]}" container exists "$1"; then
    die "could not remove container $1"
  fi
}

cmd_clean() {
  "${PODMAN[@]}" rmi "$IMAGE" >/dev/null 2>&1 || true
}

verb="${1:-}"
shift || true
case "$verb" in
  base) cmd_base ;;
  build) cmd_build ;;
  run) cmd_run "$@" ;;
  stop) cmd_stop "$@" ;;
  clean) cmd_clean ;;
  podman) exec "${PODMAN[@]}" "$@" ;;
  *) die "usage: $0 base|build|run NAME PORT [OPTIONS...]|stop NAME|clean|podman ARGS..." ;;
esac
