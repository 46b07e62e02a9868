#!/usr/bin/env bash
# The usmc demo: installs what is missing, builds (Release, build/), then runs
#   redis-benchmark -t set,get -n 100000 -c 50
# against redis-server over plain TCP loopback and with both programs under
# `usmc run`, and prints the two side by side with the speedup.
# USMC_BUILD_DIR overrides the build dir, USMC_DEMO_REQUESTS the -n.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${USMC_BUILD_DIR:-$ROOT/build}
USMC=$BUILD/src/cli/usmc
REQUESTS=${USMC_DEMO_REQUESTS:-100000}
TMP=$(mktemp -d /tmp/usmc-demo.XXXXXX)
SERVER_PID=""

cleanup() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

bash "$ROOT/scripts/setup.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
[[ -x $USMC ]] || { echo "demo: $USMC was not built" >&2; exit 1; }

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ -z $(ss -Htan "( sport = :$port )") ]] && { echo "$port"; return; }
  done
}

# wait_listen PORT: polls the kernel's listen table (no test connection).
wait_listen() {
  for _ in $(seq 500); do
    [[ -n $(ss -Hltn "( sport = :$1 )") ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "demo: redis-server died" >&2; return 1; }
    sleep 0.02
  done
  echo "demo: redis-server did not listen on $1" >&2
  return 1
}

# bench LABEL [WRAPPER...]: runs server + benchmark, writes $TMP/LABEL.csv.
bench() {
  local label=$1
  shift
  local port
  port=$(free_port)
  "$@" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$TMP" --logfile "$TMP/redis-$label.log" &
  SERVER_PID=$!
  wait_listen "$port"
  echo "demo: $label: redis-benchmark -t set,get -n $REQUESTS -c 50" >&2
  "$@" redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$REQUESTS" \
    -c 50 --csv >"$TMP/$label.csv"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

bench tcp
bench usmc "$USMC" run --

# CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
python3 - "$TMP/tcp.csv" "$TMP/usmc.csv" <<'PY'
import csv, sys
def load(path):
    with open(path) as f:
        return {r["test"]: r for r in csv.DictReader(f)}
tcp, usmc = load(sys.argv[1]), load(sys.argv[2])
print()
print("%-6s %14s %14s %8s   %12s %12s %8s" % ("test", "TCP req/s", "usmc req/s",
      "speedup", "TCP p50 ms", "usmc p50 ms", "ratio"))
for test in tcp:
    t, u = tcp[test], usmc[test]
    rt, ru = float(t["rps"]), float(u["rps"])
    lt, lu = float(t["p50_latency_ms"]), float(u["p50_latency_ms"])
    print("%-6s %14.0f %14.0f %7.2fx   %12.3f %12.3f %7.2fx" % (
        test, rt, ru, ru / rt, lt, lu, lt / lu if lu else float("inf")))
PY
