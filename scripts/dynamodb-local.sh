#!/usr/bin/env bash
# DynamoDB Local for mastersocket's tests: fetched once into a cache, checked
# against a pinned checksum, started on a free port of 127.0.0.1, stopped after.
#
#   scripts/dynamodb-local.sh fetch            download, verify and unpack; print the folder
#   scripts/dynamodb-local.sh run CMD [ARG...] start it, run CMD with DYNAMODB_ENDPOINT set, stop it
#   scripts/dynamodb-local.sh serve [PORT]     run it in the foreground (default port 8000)
#
# AWS's DynamoDB Local jar ships inside the npm package amplify-dynamodb-simulator
# (folder package/emulator). It needs Java 11 or newer and npm.
#
# DynamoDB Local has no option for the address it listens on and binds every
# interface. Where a C compiler is available, it runs with the shim in
# loopback-bind/ preloaded, so that it listens on 127.0.0.1 only; otherwise it says so
# when it starts. It runs with -disableTelemetry: it sends nothing anywhere.
# Each run works in a scratch folder of its own and removes it on exit.
set -euo pipefail

PKG=amplify-dynamodb-simulator
VERSION=2.9.30
# sha256 of amplify-dynamodb-simulator-2.9.30.tgz as served by registry.npmjs.org.
SHA256=3503ffac19f183407909fecdacf4db51ab1fdad1da7b2f177016670b2d80e4b9
CACHE=${MASTERSOCKET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mastersocket}
DIR=$CACHE/dynamodb-local-$VERSION
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf 'dynamodb-local: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"
}

fetch() {
  if [ -f "$DIR/DynamoDBLocal.jar" ]; then
    echo "$DIR"
    return
  fi
  need npm "install Node.js with npm (Debian: apt-get install nodejs npm)"
  need sha256sum "install coreutils"
  mkdir -p "$CACHE"
  # A folder of this run's own, in the cache so that the final rename is
  # atomic: runs side by side each download, and the first rename wins.
  local tmp
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  if ! (download "$tmp"); then
    rm -rf "$tmp"
    exit 1
  fi
  mv -T "$tmp/package/emulator" "$DIR" 2>/dev/null || [ -f "$DIR/DynamoDBLocal.jar" ] || {
    rm -rf "$tmp"
    die "could not unpack into $DIR"
  }
  rm -rf "$tmp"
  say "unpacked into $DIR"
  echo "$DIR"
}

# download TMP: fetches, checks and unpacks the package into TMP. It runs in
# a subshell: die ends only it, and fetch removes TMP.
download() {
  local tmp=$1 got
  say "downloading $PKG@$VERSION from the npm registry (about 55 MB, once)"
  (cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null) || die "npm pack $PKG@$VERSION failed"
  local tgz=$tmp/$PKG-$VERSION.tgz
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  [ "$got" = "$SHA256" ] || die "checksum mismatch for $PKG-$VERSION.tgz: got $got, want $SHA256"
  tar -xzf "$tgz" -C "$tmp" package/emulator || die "could not unpack $PKG-$VERSION.tgz"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# shim: prints the path of the compiled loopback-bind shim (built once into
# the cache, named by the hash of its source), or nothing without a compiler
# or where LD_PRELOAD does not apply (it is a Linux shim).
shim() {
  local cc src sum so tmp
  [ "$(uname -s)" = Linux ] || return 0
  cc=$(command -v cc || command -v gcc || command -v clang || true)
  [ -n "$cc" ] || return 0
  src=$HERE/loopback-bind/loopback-bind.c
  sum=$(sha256sum "$src" | cut -c1-16)
  so=$CACHE/loopback-bind-$sum.so
  if [ ! -f "$so" ]; then
    mkdir -p "$CACHE"
    tmp=$(mktemp "$CACHE/loopback-bind.XXXXXX")
    if ! "$cc" -shared -fPIC -O2 -o "$tmp" "$src" -ldl 2>/dev/null; then
      rm -f "$tmp"
      return 0
    fi
    mv "$tmp" "$so" # atomic: runs side by side never see a half-written file
  fi
  echo "$so"
}

# binding: how the listening address is described to the user.
binding() {
  if [ -n "$SHIM" ]; then
    echo "listening on 127.0.0.1 only"
  else
    echo "WARNING: listening on every interface (scripts/loopback-bind/ needs Linux and a C compiler)"
  fi
}

# java_cmd PORT DBARGS...: the command line of DynamoDB Local.
java_cmd() {
  local port=$1 dir
  shift
  dir=$(fetch)
  JAVA_CMD=(java -Djava.net.preferIPv4Stack=true -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar"
    -disableTelemetry -port "$port" "$@")
  JAVA_DIR=$dir
  PRELOAD=()
  if [ -n "$SHIM" ]; then
    PRELOAD=("LD_PRELOAD=$SHIM")
  fi
}

# start PORT LOG: starts DynamoDB Local in the background; sets PID.
start() {
  need java "install Java 11 or newer (Debian: apt-get install openjdk-17-jre-headless)"
  java_cmd "$1" -inMemory
  # Run from the scratch folder: DynamoDB Local writes a metadata file there.
  (cd "$(dirname "$2")" && exec env ${PRELOAD[@]+"${PRELOAD[@]}"} "${JAVA_CMD[@]}") >"$2" 2>&1 &
  PID=$!
}

# wait_ready PORT: waits until DynamoDB Local accepts connections on the port.
wait_ready() {
  local i
  for i in $(seq 1 300); do
    if ! kill -0 "$PID" 2>/dev/null; then
      return 1
    fi
    if port_in_use "$1"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

run() {
  [ $# -gt 0 ] || die "usage: $0 run CMD [ARG...]"
  local log port attempt
  SCRATCH=$(mktemp -d -t dynamodb-local.XXXXXX)
  trap 'stop; rm -rf "$SCRATCH"' EXIT
  trap 'exit 130' INT TERM
  log=$SCRATCH/dynamodb-local.log
  SHIM=$(shim)
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_in_use "$port" && continue
    start "$port" "$log"
    if wait_ready "$port"; then
      break
    fi
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
  done
  if [ -z "${PID:-}" ]; then
    cat "$log" >&2
    die "DynamoDB Local did not start (log above)"
  fi
  local version
  version=$(sed -n 's/^Version:[[:space:]]*//p' "$log" | head -1)
  export DYNAMODB_ENDPOINT=http://127.0.0.1:$port
  # Tests that stop and restart an engine of their own start it from here,
  # bound to loopback as this one is.
  export DYNAMODB_LOCAL_DIR=$JAVA_DIR DYNAMODB_LOCAL_SHIM=$SHIM
  say "DynamoDB Local ${version:-?} is up at $DYNAMODB_ENDPOINT (DYNAMODB_ENDPOINT), $(binding); running: $*"
  local status=0
  "$@" || status=$?
  stop
  exit $status
}

stop() {
  if [ -n "${PID:-}" ]; then
    say "stopping DynamoDB Local"
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
  fi
}

serve() {
  local port=${1:-8000}
  need java "install Java 11 or newer (Debian: apt-get install openjdk-17-jre-headless)"
  SCRATCH=$(mktemp -d -t dynamodb-local.XXXXXX)
  trap 'stop; rm -rf "$SCRATCH"' EXIT
  trap 'exit 130' INT TERM
  SHIM=$(shim)
  java_cmd "$port" -inMemory
  say "serving at http://127.0.0.1:$port (in memory), $(binding); Ctrl-C stops it"
  # In the background and waited for, not exec'd: the traps above stop it
  # and remove the scratch folder, however the script ends.
  (cd "$SCRATCH" && exec env ${PRELOAD[@]+"${PRELOAD[@]}"} "${JAVA_CMD[@]}") &
  PID=$!
  local status=0
  wait "$PID" || status=$?
  PID=
  exit $status
}

case "${1:-}" in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  serve) shift; serve "$@" ;;
  *) die "usage: $0 fetch | run CMD [ARG...] | serve [PORT]" ;;
esac
