#!/usr/bin/env bash
# What the statistics counters cost: libusmc.so built with the counters (USMC_COUNTERS=ON) and with
# them compiled out (OFF), measured in the same run, alternating, with both ends under `usmc run`:
#   - 64 B ping-pong (bench_pingpong): median round trip, µs (lower is better)
#   - 64 KiB stream (bench_stream): MB/s (higher is better)
# Prints the median and the best of each variant over the rounds and the ratios ON/OFF (on a busy
# machine the best runs are the steadier comparison).
#
# usage: bench/bench_counters.sh [-r ROUNDS] [-d SECONDS] [--on DIR] [--off DIR] [--no-build]
#   -r ROUNDS     rounds; each runs both variants of both benchmarks (default 5)
#   -d SECONDS    duration of each run (default 2)
#   --on DIR      build dir with the counters (default build-counters-on)
#   --off DIR     build dir without them (default build-counters-off)
#   --no-build    use the build dirs as they are
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
rounds=5
secs=2
on=$src/build-counters-on
off=$src/build-counters-off
build=1
while [[ $# -gt 0 ]]; do
  case $1 in
    -r) rounds=$2; shift 2 ;;
    -d) secs=$2; shift 2 ;;
    --on) on=$2; shift 2 ;;
    --off) off=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_counters.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

configure() {  # DIR ON|OFF
  cmake -S "$src" -B "$1" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSMC_COUNTERS="$2" >/dev/null
  cmake --build "$1" -j"$(nproc)" --target usmc usmc_cli bench_pingpong bench_stream >/dev/null
  grep -q "^USMC_COUNTERS:BOOL=$2" "$1/CMakeCache.txt" || { echo "$1: USMC_COUNTERS is not $2" >&2; exit 1; }
}
if [[ $build == 1 ]]; then
  echo "building $on (counters ON) and $off (counters OFF)..." >&2
  configure "$on" ON
  configure "$off" OFF
fi

usmc=$on/src/cli/usmc  # the CLI and the bench programs are the same for both; the library differs
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# run VARIANT PROGRAM CLIENT_ARGS... -> the client's JSON line on stdout
run() {
  local lib=$1/src/preload/libusmc.so prog=$on/bench/$2
  shift 2
  local ready
  ready=$(mktemp "$tmp/ready.XXXXXX")  # a fresh file: never the previous server's port
  USMC_LIB=$lib "$usmc" run -- "$prog" --server --tcp 0 >"$ready" 2>"$tmp/server.err" &
  local server=$! port=""
  for _ in $(seq 200); do
    port=$(awk '/^READY/ {print $2}' "$ready" 2>/dev/null)
    [[ -n $port ]] && break
    sleep 0.05
  done
  [[ -n $port ]] || { echo "server did not start: $(cat "$tmp/server.err")" >&2; exit 1; }
  USMC_LIB=$lib "$usmc" run -- "$prog" --client --tcp "$port" "$@"
  wait "$server" || true
}

: >"$tmp/results"
for r in $(seq "$rounds"); do
  order="$on $off"
  (( r % 2 == 0 )) && order="$off $on"  # alternate, so drift hits both alike
  for dir in $order; do
    variant=on
    [[ $dir == "$off" ]] && variant=off
    pp=$(run "$dir" bench_pingpong --size 64 --duration "$secs")
    st=$(run "$dir" bench_stream --chunk 65536 --duration "$secs")
    echo "$variant $pp" >>"$tmp/results"
    echo "$variant $st" >>"$tmp/results"
    echo "round $r counters $variant: $(grep -o '"median_us": [0-9.]*' <<<"$pp") $(grep -o '"mbps": [0-9.]*' <<<"$st")" >&2
  done
done

python3 - "$tmp/results" "$rounds" "$secs" <<'EOF'
import json, statistics, sys
runs = {"on": {"pingpong": [], "stream": []}, "off": {"pingpong": [], "stream": []}}
for line in open(sys.argv[1]):
    variant, doc = line.split(" ", 1)
    d = json.loads(doc)
    if d["bench"] == "pingpong":
        runs[variant]["pingpong"].append(d["median_us"])
    else:
        runs[variant]["stream"].append(d["mbps"])
med = {v: {b: statistics.median(x) for b, x in r.items()} for v, r in runs.items()}
best = {v: {"pingpong": min(r["pingpong"]), "stream": max(r["stream"])} for v, r in runs.items()}
print("counters on vs compiled out: %s rounds x %s s, both ends under usmc run" % (sys.argv[2], sys.argv[3]))
print("%-34s %12s %12s %8s" % ("", "counters ON", "OFF", "ON/OFF"))
pp_on, pp_off = med["on"]["pingpong"], med["off"]["pingpong"]
st_on, st_off = med["on"]["stream"], med["off"]["stream"]
print("%-34s %12.3f %12.3f %8.3f" % ("64 B ping-pong median RTT (us)", pp_on, pp_off, pp_on / pp_off))
print("%-34s %12.0f %12.0f %8.3f" % ("64 KiB stream (MB/s)", st_on, st_off, st_on / st_off))
b = best
print("%-34s %12.3f %12.3f %8.3f" % ("best ping-pong RTT (us)", b["on"]["pingpong"], b["off"]["pingpong"],
                                     b["on"]["pingpong"] / b["off"]["pingpong"]))
print("%-34s %12.0f %12.0f %8.3f" % ("best stream (MB/s)", b["on"]["stream"], b["off"]["stream"],
                                     b["on"]["stream"] / b["off"]["stream"]))
for v in ("on", "off"):
    print("  runs %-3s pingpong %s  stream %s" % (
        v, " ".join("%.3f" % x for x in runs[v]["pingpong"]),
        " ".join("%.0f" % x for x in runs[v]["stream"])))
print(json.dumps({"pingpong_median_us": {"on": pp_on, "off": pp_off, "ratio": pp_on / pp_off},
                  "stream_mbps": {"on": st_on, "off": st_off, "ratio": st_on / st_off}}))
EOF
