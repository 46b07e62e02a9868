#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for
# SECONDS (default 20). Exits non-zero if a target fails to build or crashes.
#
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
#   TARGET defaults to every tests/fuzz/*_fuzz.cc (e.g. clc_fuzz).
# Seeds come from tests/fuzz/corpus/<name>/ (clc_fuzz -> corpus/clc/) and are
# only read; new corpus entries and crash artifacts go to build-fuzz/.
set -euo pipefail

seconds=${1:-20}
if [[ $# -gt 0 ]]; then shift; fi
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$fuzz_dir/../.." && pwd)
build=$root/build-fuzz
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for src in "$fuzz_dir"/*_fuzz.cc; do targets+=("$(basename "$src" .cc)"); done
fi

cmake -S "$root" -B "$build" -DUSMC_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_C_FLAGS=$flags" "-DCMAKE_CXX_FLAGS=$flags" >/dev/null

failed=()
for target in "${targets[@]}"; do
  name=${target%_fuzz}
  if ! cmake --build "$build" --target "$target" -j"$(nproc)"; then
    echo "run.sh: $target: build failed" >&2
    failed+=("$target")
    continue
  fi
  work=$build/fuzz-corpus/$name
  mkdir -p "$work" "$build/fuzz-artifacts"
  args=(-max_total_time="$seconds" -print_final_stats=1
        -artifact_prefix="$build/fuzz-artifacts/$target-")
  [[ -f $fuzz_dir/$name.dict ]] && args+=(-dict="$fuzz_dir/$name.dict")
  dirs=("$work")
  [[ -d $fuzz_dir/corpus/$name ]] && dirs+=("$fuzz_dir/corpus/$name")
  echo "run.sh: $target for ${seconds}s"
  if ! "$build/tests/fuzz/$target" "${args[@]}" "${dirs[@]}"; then
    echo "run.sh: $target: crashed (artifacts in $build/fuzz-artifacts)" >&2
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "run.sh: all fuzz targets passed"
