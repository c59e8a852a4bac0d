#!/usr/bin/env bash
# A real Kubernetes 1.20 control plane (etcd + kube-apiserver +
# kube-controller-manager) on loopback, for the Kubernetes backend's tests.
# There is no kubelet: tests play it by patching pod status (tests/kubelet.py).
#
#   kube-test-cluster.sh build              build the binaries once into the cache
#   kube-test-cluster.sh start DIR [--rbac] start a cluster with its state in DIR
#   kube-test-cluster.sh stop DIR           stop the cluster started in DIR
#   kube-test-cluster.sh status             print the cache dir; exit 1 if not built
#
# No prebuilt kube-apiserver exists in Debian's binary packages, so `build`
# compiles Kubernetes 1.20.2 from Debian bookworm's `kubernetes` *source*
# package with Debian's Go 1.19, unpacked privately (nothing is installed
# system-wide except make and rsync when missing); etcd comes from Debian's
# etcd-server .deb. A private apt configuration is used: /etc/apt is never
# touched. About 5.5 minutes and ~3 GB of scratch space on 2 cores, cold; the
# scratch tree is removed afterwards and only the binaries (~230 MB) stay. A
# build interrupted half-way resumes from its last finished stage; concurrent
# builds wait for each other (flock); a finished build is a no-op.
#
#   DORMOUSE_KUBE_CACHE      where the binaries go (default /var/cache/dormouse/kube-1.20.2,
#                            or ~/.cache/dormouse/kube-1.20.2 when not root)
#   DORMOUSE_DEBIAN_MIRROR   Debian mirror (default: the system's, else http://deb.debian.org/debian)
#
# `start` picks free loopback ports, writes DIR/kubeconfig (an admin token in
# group system:masters), with --rbac also DIR/kubeconfig-sa (the ServiceAccount
# dormouse/dormouse) and runs the apiserver with --authorization-mode=RBAC
# (else AlwaysAllow). It writes DIR/cluster.env (ports, server URL), DIR/*.pid
# and DIR/*.log, and prints the admin kubeconfig's path on stdout. With
# DORMOUSE_KUBE_WATCH_PID set, a watchdog stops the cluster when that process
# exits, so a killed test run leaves nothing behind.
set -euo pipefail

KUBE_VERSION=1.20.2
KUBE_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
GO_PKG=golang-1.19
STAMP_NAME=STAMP
# Bump when the build recipe or the helper changes, so old caches rebuild.
RECIPE=1

if [[ "$(id -u)" == 0 ]]; then
  cache="${DORMOUSE_KUBE_CACHE:-/var/cache/dormouse/kube-${KUBE_VERSION}}"
else
  cache="${DORMOUSE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dormouse/kube-${KUBE_VERSION}}"
fi
self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

log() { echo "kube-test-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$self" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

built() {
  [[ -f "$cache/$STAMP_NAME" ]] && grep -qx "recipe=$RECIPE" "$cache/$STAMP_NAME" \
    && [[ -x "$cache/bin/kube-apiserver" && -x "$cache/bin/kube-controller-manager" \
          && -x "$cache/bin/etcd" && -x "$cache/bin/sa-keygen" ]]
}

# ---------------------------------------------------------------- build ----

debian_mirror() {
  if [[ -n "${DORMOUSE_DEBIAN_MIRROR:-}" ]]; then
    echo "$DORMOUSE_DEBIAN_MIRROR"
    return
  fi
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | grep -v -- '-security' | head -n 1 | tr -d ' ' || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

ensure_system_tools() {
  local missing=()
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  if ((${#missing[@]})); then
    [[ "$(id -u)" == 0 ]] || die "the build needs ${missing[*]}; install them (apt-get install ${missing[*]})"
    log "installing ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

cmd_build() {
  if built; then
    echo "$cache"
    return
  fi
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  if ! flock -n 9; then
    log "another build of $cache is running; waiting for it"
    flock 9
  fi
  if built; then
    echo "$cache"
    return
  fi

  local t0=$SECONDS
  local work="$cache/work"
  local dl="$work/download" root="$work/root" apt="$work/apt"
  mkdir -p "$work" "$dl" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d"
  ensure_system_tools

  # 1. Download the kubernetes source package and the .debs, through a private
  #    apt configuration (own sources, lists and cache; /etc/apt untouched).
  if [[ ! -f "$work/.downloaded" ]]; then
    local mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    mirror="$(debian_mirror)"
    log "[1/5] downloading the kubernetes source package and Go/etcd .debs from $mirror"
    {
      echo "Types: deb deb-src"
      echo "URIs: $mirror"
      echo "Suites: bookworm"
      echo "Components: main"
      if [[ -f "$keyring" ]]; then echo "Signed-By: $keyring"; fi
    } >"$apt/sources.list.d/bookworm.sources"
    local aptopts=(
      -o "Dir::Etc::SourceList=/dev/null"
      -o "Dir::Etc::SourceParts=$apt/sources.list.d"
      -o "Dir::State::Lists=$apt/lists"
      -o "Dir::Cache=$apt/cache"
      -o "APT::Sandbox::User=root"
      -o "Acquire::Languages=none"
      -o "APT::Get::Only-Source=true"
      -o "Debug::NoLocking=true"
      -q
    )
    apt-get "${aptopts[@]}" update >&2
    rm -f "$dl"/*
    (
      cd "$dl"
      apt-get "${aptopts[@]}" source --download-only kubernetes >&2
      apt-get "${aptopts[@]}" download \
        "$GO_PKG-go" "$GO_PKG-src" etcd-server golang-github-modern-go-reflect2-dev >&2
    )
    ls "$dl"/kubernetes_*.orig.tar.* >/dev/null 2>&1 || die "no kubernetes orig tarball was downloaded"
    touch "$work/.downloaded"
  fi

  # 2. Unpack the .debs into a private root (dpkg -x installs nothing).
  if [[ ! -f "$work/.unpacked" ]]; then
    log "[2/5] unpacking Go ${GO_PKG#golang-}, etcd and reflect2 privately"
    rm -rf "$root"
    mkdir -p "$root"
    local deb
    for deb in "$dl"/*.deb; do
      dpkg -x "$deb" "$root"
    done
    # Absolute symlinks inside the unpacked Go tree point at the real /usr:
    # make them point into the private root.
    local link target
    while IFS= read -r link; do
      target="$(readlink "$link")"
      if [[ "$target" == /* ]]; then
        ln -sfn "$root$target" "$link"
      fi
    done < <(find "$root/usr/lib/go-${GO_PKG#golang-}" -type l)
    touch "$work/.unpacked"
  fi
  local goroot="$root/usr/lib/go-${GO_PKG#golang-}"
  [[ -x "$goroot/bin/go" ]] || die "no go binary in $goroot"

  # 3. Unpack the Kubernetes tree; swap the vendored reflect2 1.0.1 (segfaults
  #    decoding custom objects under Go >= 1.18) for Debian's 1.0.2.
  local src="$work/kubernetes"
  if [[ ! -f "$work/.source" ]]; then
    log "[3/5] unpacking the Kubernetes $KUBE_VERSION source tree"
    rm -rf "$src" "$work/src.tmp"
    mkdir -p "$work/src.tmp"
    local orig=("$dl"/kubernetes_*.orig.tar.*)
    tar -xf "${orig[0]}" -C "$work/src.tmp"
    local top
    top="$(find "$work/src.tmp" -mindepth 1 -maxdepth 1 -type d)"
    [[ -n "$top" && -f "$top/Makefile" ]] || die "unexpected layout of the kubernetes tarball"
    mv "$top" "$src"
    rm -rf "$work/src.tmp"
    local reflect2="$root/usr/share/gocode/src/github.com/modern-go/reflect2"
    [[ -d "$reflect2" ]] || die "reflect2 not found in golang-github-modern-go-reflect2-dev"
    rm -rf "$src/vendor/github.com/modern-go/reflect2"
    cp -rL "$reflect2" "$src/vendor/github.com/modern-go/reflect2"
    touch "$work/.source"
  fi

  # 4. Build (the make target runs the code generators first).
  local version_file="$work/version.env"
  cat >"$version_file" <<EOF
KUBE_GIT_COMMIT='$KUBE_COMMIT'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_VERSION='v$KUBE_VERSION'
KUBE_GIT_MAJOR='${KUBE_VERSION%%.*}'
KUBE_GIT_MINOR='$(echo "$KUBE_VERSION" | cut -d. -f2)'
EOF
  local buildenv=(
    env "PATH=$goroot/bin:$PATH" "GOROOT=$goroot" "GOCACHE=$work/gocache" "GOPATH=$work/gopath"
    GOPROXY=off GOFLAGS= GOSUMDB=off CGO_ENABLED=0 "KUBE_GIT_VERSION_FILE=$version_file"
  )
  if [[ ! -x "$src/_output/bin/kube-apiserver" || ! -x "$src/_output/bin/kube-controller-manager" ]]; then
    log "[4/5] building kube-apiserver and kube-controller-manager with Go $("$goroot/bin/go" env GOVERSION 2>/dev/null || echo 1.19) (minutes)"
    (cd "$src" && "${buildenv[@]}" make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2)
  fi

  # A tiny helper that makes the ServiceAccount signing keypair, so `start`
  # needs no openssl.
  mkdir -p "$work/keygen"
  cat >"$work/keygen/main.go" <<'EOF'
// sa-keygen PRIVATE PUBLIC: an RSA keypair in PEM for ServiceAccount tokens.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sa-keygen PRIVATE PUBLIC")
		os.Exit(2)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(err)
	}
	priv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(os.Args[1], priv, 0o600); err != nil {
		panic(err)
	}
	if err := os.WriteFile(os.Args[2], pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		panic(err)
	}
}
EOF
  (cd "$work/keygen" && "${buildenv[@]}" GO111MODULE=off go build -trimpath -o sa-keygen main.go)

  # 5. Keep the binaries, drop the scratch tree.
  log "[5/5] installing the binaries into $cache/bin and removing the build tree"
  rm -rf "$cache/bin.tmp"
  mkdir -p "$cache/bin.tmp"
  install -m 0755 "$src/_output/bin/kube-apiserver" "$src/_output/bin/kube-controller-manager" \
    "$root/usr/bin/etcd" "$work/keygen/sa-keygen" "$cache/bin.tmp/"
  "$cache/bin.tmp/kube-apiserver" --version >&2
  "$cache/bin.tmp/etcd" --version | head -n 1 >&2
  rm -rf "${cache:?}/bin"
  mv "$cache/bin.tmp" "$cache/bin"
  local secs=$((SECONDS - t0))
  {
    echo "recipe=$RECIPE"
    echo "kubernetes=$KUBE_VERSION"
    echo "etcd=$("$cache/bin/etcd" --version | sed -n 's/^etcd Version: //p')"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "seconds=$secs"
  } >"$cache/$STAMP_NAME.tmp"
  mv "$cache/$STAMP_NAME.tmp" "$cache/$STAMP_NAME"
  # Go's module/build caches are read-only files: make them removable first.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
  log "built in ${secs}s: $cache"
  echo "$cache"
}

# ---------------------------------------------------------------- start ----

# N distinct free TCP ports on 127.0.0.1 (bound together, then released).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

random_token() {
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# http_ok URL [CAFILE TOKEN]: does GET URL answer 200?
http_ok() {
  python3 - "$@" <<'EOF' >/dev/null 2>&1
import ssl, sys, urllib.request
url = sys.argv[1]
req = urllib.request.Request(url)
ctx = None
if len(sys.argv) > 2:
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    req.add_header("Authorization", "Bearer " + sys.argv[3])
with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

# the "default" ServiceAccount exists in namespace default: the
# controller-manager is up and its controllers are syncing.
controllers_ok() {
  http_ok "https://127.0.0.1:$1/api/v1/namespaces/default/serviceaccounts/default" "$2" "$3"
}

write_kubeconfig() {  # FILE SERVER CAFILE USER TOKEN
  local ca_data
  ca_data="$(base64 -w0 <"$3")"
  cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: dormouse-test
  cluster:
    server: $2
    certificate-authority-data: $ca_data
users:
- name: $4
  user:
    token: $5
contexts:
- name: dormouse-test
  context:
    cluster: dormouse-test
    user: $4
current-context: dormouse-test
preferences: {}
EOF
  chmod 600 "$1.tmp"
  mv "$1.tmp" "$1"
}

# launch NAME CMD...: run detached in its own session, log and pid in $dir.
launch() {
  local name="$1"
  shift
  setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

alive() {  # NAME
  local pid
  pid="$(cat "$dir/$1.pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for SECONDS NAME-OF-PROCESS-THAT-MUST-STAY-UP CHECK...
wait_for() {
  local deadline=$((SECONDS + $1)) proc="$2"
  shift 2
  until "$@"; do
    alive "$proc" || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

fail_start() {
  log "error: $1"
  local f
  for f in "$dir"/*.log; do
    [[ -f "$f" ]] || continue
    log "---- last lines of $f"
    tail -n 15 "$f" >&2
  done
  stop_dir "$dir"
  exit 1
}

cmd_start() {
  [[ $# -ge 1 ]] || usage
  dir="$1"
  shift
  local rbac=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --rbac) rbac=1 ;;
      *) usage ;;
    esac
    shift
  done
  built || die "the binaries are not built in $cache; run: $self build"
  local bin="$cache/bin"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if alive etcd || alive kube-apiserver || alive kube-controller-manager; then
    die "a cluster is already running in $dir; stop it first"
  fi
  rm -rf "$dir/etcd-data" "$dir/certs" "$dir"/*.pid "$dir"/*.log "$dir/kubeconfig" "$dir/kubeconfig-sa" \
    "$dir/kubeconfig-controller-manager" "$dir/cluster.env"
  mkdir -p "$dir/certs"
  chmod 700 "$dir"

  # Credentials: SA signing keypair and a static token file.
  "$bin/sa-keygen" "$dir/sa.key" "$dir/sa.pub"
  local admin_token cm_token sa_token
  admin_token="$(random_token)"
  cm_token="$(random_token)"
  sa_token="$(random_token)"
  {
    echo "$admin_token,dormouse-test-admin,dormouse-test-admin,system:masters"
    echo "$cm_token,system:kube-controller-manager,kube-controller-manager,system:masters"
    if ((rbac)); then
      echo "$sa_token,system:serviceaccount:dormouse:dormouse,dormouse-sa,\"system:serviceaccounts,system:serviceaccounts:dormouse\""
    fi
  } >"$dir/tokens.csv"
  chmod 600 "$dir/tokens.csv"

  local attempt etcd_port peer_port api_port ca="$dir/certs/apiserver.crt"
  for attempt in 1 2 3; do
    read -r etcd_port peer_port api_port <<<"$(free_ports 3)"
    log "starting etcd on 127.0.0.1:$etcd_port (state in $dir)"
    rm -rf "$dir/etcd-data"
    launch etcd "$bin/etcd" --name default --data-dir "$dir/etcd-data" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "default=http://127.0.0.1:$peer_port" --listen-metrics-urls "" \
      --snapshot-count 10000 --log-level warn
    if wait_for 30 etcd http_ok "http://127.0.0.1:$etcd_port/health"; then
      break
    fi
    if ((attempt == 3)); then
      fail_start "etcd did not come up"
    fi
    log "etcd did not come up (port clash?); retrying"
    stop_dir "$dir"
  done

  local authz=AlwaysAllow
  ((rbac)) && authz=RBAC
  for attempt in 1 2 3; do
    log "starting kube-apiserver on https://127.0.0.1:$api_port (authorization $authz)"
    launch kube-apiserver "$bin/kube-apiserver" \
      --etcd-servers "http://127.0.0.1:$etcd_port" \
      --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
      --cert-dir "$dir/certs" --token-auth-file "$dir/tokens.csv" \
      --authorization-mode "$authz" \
      --service-account-issuer https://kubernetes.default.svc \
      --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
      --service-cluster-ip-range 10.96.0.0/16 \
      --allow-privileged=true --profiling=false --enable-priority-and-fairness=false \
      --v=1
    if wait_for 60 kube-apiserver eval "[[ -f '$ca' ]] && http_ok 'https://127.0.0.1:$api_port/readyz' '$ca' '$admin_token'"; then
      break
    fi
    if ((attempt == 3)) || alive kube-apiserver; then
      fail_start "kube-apiserver did not become ready"
    fi
    log "kube-apiserver exited (port clash?); retrying on another port"
    api_port="$(free_ports 1)"
  done

  local server="https://127.0.0.1:$api_port"
  write_kubeconfig "$dir/kubeconfig" "$server" "$ca" dormouse-test-admin "$admin_token"
  write_kubeconfig "$dir/kubeconfig-controller-manager" "$server" "$ca" system:kube-controller-manager "$cm_token"
  if ((rbac)); then
    write_kubeconfig "$dir/kubeconfig-sa" "$server" "$ca" dormouse-sa "$sa_token"
  fi

  log "starting kube-controller-manager"
  launch kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig-controller-manager" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 --leader-elect=false --controllers '*' \
    --service-account-private-key-file "$dir/sa.key" --root-ca-file "$ca" \
    --use-service-account-credentials=false --profiling=false --v=1
  wait_for 60 kube-controller-manager controllers_ok "$api_port" "$ca" "$admin_token" \
    || fail_start "kube-controller-manager did not start its controllers"

  cat >"$dir/cluster.env" <<EOF
SERVER=$server
API_PORT=$api_port
ETCD_PORT=$etcd_port
KUBECONFIG=$dir/kubeconfig
RBAC=$rbac
EOF

  if [[ -n "${DORMOUSE_KUBE_WATCH_PID:-}" ]]; then
    local watched="$DORMOUSE_KUBE_WATCH_PID"
    # shellcheck disable=SC2016  # expanded by the watchdog's own shell
    setsid bash -c '
      while kill -0 "$1" 2>/dev/null && [[ -f "$2/kube-apiserver.pid" ]]; do sleep 1; done
      [[ -f "$2/kube-apiserver.pid" ]] && DORMOUSE_KUBE_IN_WATCHDOG=1 "$3" stop "$2"
    ' watchdog "$watched" "$dir" "$self" </dev/null >>"$dir/watchdog.log" 2>&1 &
    echo $! >"$dir/watchdog.pid"
  fi
  log "cluster ready: $server (kubeconfig $dir/kubeconfig)"
  echo "$dir/kubeconfig"
}

# ----------------------------------------------------------------- stop ----

# our_pid FILE NAME: the pid in FILE if it still runs the program we started
# (pids get reused); otherwise nothing, and the stale FILE is removed.
our_pid() {
  local file="$1" name="$2" pid
  pid="$(cat "$file" 2>/dev/null)" || return 0
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$name"; then
    echo "$pid"
  else
    rm -f "$file"
  fi
}

# term_kill DIR NAME...: TERM those still running, all at once; KILL what is
# left after 10 s.
term_kill() {
  local d="$1" name pid pids=() files=()
  shift
  for name in "$@"; do
    pid="$(our_pid "$d/$name.pid" "$name")"
    if [[ -n "$pid" ]]; then
      pids+=("$pid")
      files+=("$d/$name.pid")
    fi
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local _
  for _ in $(seq 1 100); do
    kill -0 "${pids[@]}" 2>/dev/null || break  # true while any is alive
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "process $pid ignored TERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for _ in $(seq 1 50); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "${files[@]}"
}

# Stop everything started in DIR (idempotent). etcd goes last: the apiserver
# hangs in its shutdown while etcd is gone.
stop_dir() {
  local d="$1"
  if [[ -z "${DORMOUSE_KUBE_IN_WATCHDOG:-}" ]]; then
    term_kill "$d" watchdog kube-controller-manager kube-apiserver
  else
    term_kill "$d" kube-controller-manager kube-apiserver
  fi
  term_kill "$d" etcd
  rm -f "$d/watchdog.pid"
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  [[ -d "$1" ]] || return 0
  dir="$(cd "$1" && pwd)"
  stop_dir "$dir"
}

case "${1:-}" in
  build) shift; [[ $# -eq 0 ]] || usage; cmd_build ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) echo "$cache"; built ;;
  *) usage ;;
esac
