#!/usr/bin/env bash
# Runs every usmc test and ends with "usmc tests: N passed, M failed".
#
#   1. scripts/setup.sh (installs what is missing)
#   2. Release build in build/, all tests (unit + integration, plain and usmc)
#   3. ASan+UBSan build in build-asan/, tests without the "apps" label, -j2
#   4. TSan build in build-tsan/, tests without the "apps" label, -j2
#   5. tests/fuzz/run.sh 15 (if present)
#
# Sanitizer runs skip the "apps" label (redis, nginx, memcached, iperf3, wrk,
# python under usmc): those binaries are not instrumented, so TSan cannot see
# the synchronisation inside them and reports false races on the memory they
# hand to libusmc, and ASan/UBSan would only check libusmc's own code there,
# which the "tools" label already drives through the same preload code paths
# with our instrumented test programs (and at a fraction of the run time).
#
# Environment: USMC_TEST_PLAIN_ONLY=1 skips the usmc variants (exit 77 ->
# skipped), USMC_TEST_SKIP_SANITIZERS=1 runs only steps 1, 2 and 5,
# USMC_BUILD_BASE=DIR builds in DIR, DIR-asan, DIR-tsan instead of build*.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${USMC_BUILD_BASE:-$ROOT/build}
JOBS=$(nproc)
PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()

failed_step() {
  FAILED=$((FAILED + 1))
  FAILURES+=("$1")
  echo "*** FAILED: $1"
}

# build NAME DIR CMAKE_ARGS...
build() {
  local name=$1 dir=$2
  shift 2
  echo "=== $name: configure and build in $dir"
  mkdir -p "$dir"
  if ! cmake -S "$ROOT" -B "$dir" "$@" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"
    failed_step "$name: configure"
    return 1
  fi
  if ! cmake --build "$dir" -j"$JOBS"; then
    failed_step "$name: build"
    return 1
  fi
}

# run_ctest NAME DIR CTEST_ARGS... ; adds ctest's counts to the totals.
run_ctest() {
  local name=$1 dir=$2
  shift 2
  echo "=== $name: ctest $*"
  local log="$dir/ctest-summary.log"
  (cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$log"
  local summary
  summary=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
  if [[ -z $summary ]]; then
    failed_step "$name: ctest did not run"
    return
  fi
  local nfail total nskip
  nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$summary")
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  nskip=$(grep -c "(Skipped)" "$log" || true)
  PASSED=$((PASSED + total - nfail - nskip))
  SKIPPED=$((SKIPPED + nskip))
  FAILED=$((FAILED + nfail))
  if ((nfail > 0)); then FAILURES+=("$name: $nfail of $total tests"); fi
}

START=$(date +%s)
if ! bash "$ROOT/scripts/setup.sh"; then failed_step "setup"; fi

if build release "$BASE" -DCMAKE_BUILD_TYPE=Release; then
  run_ctest release "$BASE" -j"$JOBS"
fi

if [[ ${USMC_TEST_SKIP_SANITIZERS:-0} != 1 ]]; then
  # Short transfers under sanitizers; UB aborts the process (so tests fail).
  # verify_asan_link_order=0: belt and braces for programs that reach the
  # ASan-built libusmc.so without `usmc run` putting libasan first.
  export USMC_TEST_QUICK=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  if build asan "$BASE-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DUSMC_SANITIZE=address,undefined; then
    ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1 \
      run_ctest asan "$BASE-asan" -j2 -LE apps
  fi
  if build tsan "$BASE-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DUSMC_SANITIZE=thread; then
    TSAN_OPTIONS=second_deadlock_stack=1 \
      run_ctest tsan "$BASE-tsan" -j2 -LE apps
  fi
  unset USMC_TEST_QUICK
fi

if [[ -f $ROOT/tests/fuzz/run.sh ]]; then
  echo "=== fuzz: tests/fuzz/run.sh 15"
  if bash "$ROOT/tests/fuzz/run.sh" 15; then
    PASSED=$((PASSED + 1))
  else
    failed_step "fuzz"
  fi
fi

echo
echo "=== done in $(($(date +%s) - START)) s; skipped: $SKIPPED"
for f in "${FAILURES[@]+"${FAILURES[@]}"}"; do echo "failed: $f"; done
echo "usmc tests: $PASSED passed, $FAILED failed"
((FAILED == 0))
