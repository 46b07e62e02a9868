#!/usr/bin/env bash
# Smoke test of the usmc command. Usage: cli_smoke.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: cli_smoke.sh BUILD_DIR}
usmc="$build/src/cli/usmc"
[[ -x "$usmc" ]] || { echo "FAIL: $usmc not found or not executable" >&2; exit 1; }
if [[ -z "${USMC_LIB:-}" && ! -e "$build/src/preload/libusmc.so" ]]; then
  echo "FAIL: $build/src/preload/libusmc.so not built" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs "$@", keeping stdout, stderr and the exit status in $out, $err, $rc.
capture() {
  rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  out=$(<"$tmp/out")
  err=$(<"$tmp/err")
}

capture "$usmc" --version
[[ $rc -eq 0 && "$out" =~ ^usmc\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--version: rc=$rc '$out'"

capture "$usmc" help run
[[ $rc -eq 0 ]] || fail "help run: rc=$rc"
for section in NAME SYNOPSIS DESCRIPTION OPTIONS ENVIRONMENT EXAMPLES; do
  grep -q "^$section" <<<"$out" || fail "help run: no $section"
done
for cmd in ss stats bench bpf; do
  capture "$usmc" "$cmd" --help
  [[ $rc -eq 0 ]] && grep -q '^SYNOPSIS' <<<"$out" || fail "$cmd --help: rc=$rc"
done

capture "$usmc" run -- env
[[ $rc -eq 0 ]] || fail "run -- env: rc=$rc: $err"
preload=$(grep '^LD_PRELOAD=' <<<"$out") || fail "run -- env: no LD_PRELOAD"
[[ "$preload" == *libusmc.so* ]] || fail "run -- env: $preload"

capture env LD_PRELOAD= "$usmc" run -d -r 64k -t 1m env
grep -qx 'USMC_DEBUG=1' <<<"$out" || fail "run -d: USMC_DEBUG not set"
grep -qx 'USMC_RCVBUF=65536' <<<"$out" || fail "run -r 64k: USMC_RCVBUF"
grep -qx 'USMC_SNDBUF=1048576' <<<"$out" || fail "run -t 1m: USMC_SNDBUF"

capture "$usmc" run --rules 'bogus' -- true
[[ $rc -eq 2 ]] || fail "run --rules bogus: rc=$rc"
grep -q "line 1: unknown action 'bogus'" <<<"$err" || fail "run --rules bogus: '$err'"

capture "$usmc" run --rules $'accelerate server *:6379\ntcp sever *' -- true
[[ $rc -eq 2 ]] || fail "run --rules (line 2): rc=$rc"
grep -q "line 2: unknown role 'sever'" <<<"$err" || fail "run --rules (line 2): '$err'"

capture "$usmc" run --rules 'accelerate any *:6379; tcp any *' -- env
[[ $rc -eq 0 ]] && grep -qx 'USMC_RULES=accelerate any \*:6379; tcp any \*' <<<"$out" ||
  fail "run --rules: rc=$rc, USMC_RULES not exported"

capture "$usmc" run -- /nonexistent
[[ $rc -eq 127 ]] || fail "run -- /nonexistent: rc=$rc"
grep -qx 'usmc run: /nonexistent: No such file or directory' <<<"$err" || fail "'$err'"

capture "$usmc" run
[[ $rc -eq 2 ]] && grep -q '^usage: usmc run' <<<"$err" || fail "run without COMMAND: rc=$rc"

capture "$usmc" run -r 12x true
[[ $rc -eq 2 ]] || fail "run -r 12x: rc=$rc"

capture "$usmc" run sh -c 'exit 7'
[[ $rc -eq 7 ]] || fail "run sh -c 'exit 7': rc=$rc"

echo "cli_smoke: OK"
