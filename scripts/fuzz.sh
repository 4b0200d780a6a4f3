#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ (clang, ASan + UBSan, in build-fuzz/), replays
# the kept crashers of tests/regressions/<format>/, then fuzzes every format for a
# bounded time, starting from the seeds of fuzz/corpus/<format>/ plus what earlier runs
# found (build-fuzz/corpus/<format>/). Fails if any harness crashes, hangs, leaks,
# allocates too much or trips a sanitizer; the input that did it is left in
# build-fuzz/artifacts/<format>/ — fix the parser, then keep the input as a
# regression file under tests/regressions/<format>/ (the Catch2 tests replay it too).
#
#   scripts/fuzz.sh              30 s per harness (2 at a time on 2 cores: about 2 minutes)
#   scripts/fuzz.sh 600          10 minutes each
#   ONNAS_FUZZ_ONLY="idx cifar" scripts/fuzz.sh 60     some formats only
#   ONNAS_FUZZ_PARALLEL=1 ...    one harness at a time (default: nproc)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
dir=${ONNAS_FUZZ_BUILD_DIR:-$root/build-fuzz}
parallel=${ONNAS_FUZZ_PARALLEL:-$(nproc)}

"$root/scripts/setup.sh" --fuzz
CXX=clang++ cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNAS_FUZZ=ON \
  -DONNAS_BUILD_TESTS=OFF -DONNAS_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" --parallel "$(nproc)" --target fuzzers

# format -> -max_len: room for a few records or tensors, small enough to stay fast.
declare -A max_len=([safetensors]=4096 [genotype]=4096 [idx]=1024 [cifar]=10000 [image]=8192 [buffer_list]=4096
                    [checkpoint]=4096 [meta_cell]=8192)
formats=(${ONNAS_FUZZ_ONLY:-safetensors genotype idx cifar image buffer_list checkpoint meta_cell})
# A lying header must not cost more than this: libFuzzer reports a larger malloc.
limits=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
# Kept crashers first: each must now be refused cleanly.
for f in "${formats[@]}"; do
  reg=$root/tests/regressions/$f
  [[ -d $reg ]] || continue
  mapfile -t files < <(find "$reg" -type f | sort)
  (( ${#files[@]} )) || continue
  if "$dir/fuzz/fuzz_$f" "${limits[@]}" "${files[@]}" >"$dir/replay_$f.log" 2>&1; then
    echo "fuzz: $f: ${#files[@]} regression files replayed"
  else
    echo "fuzz: $f: a regression file fails again (log: $dir/replay_$f.log)" >&2
    tail -n 30 "$dir/replay_$f.log" >&2
    failed+=("$f (regression)")
  fi
done

run_one() {
  local f=$1 log=$dir/fuzz_$f.log
  local work=$dir/corpus/$f artifacts=$dir/artifacts/$f/
  mkdir -p "$work" "$artifacts"
  local rc=0
  "$dir/fuzz/fuzz_$f" "$work" "$root/fuzz/corpus/$f" -max_total_time="$seconds" -max_len="${max_len[$f]}" \
    "${limits[@]}" -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  echo "$rc" >"$dir/fuzz_$f.rc"
}

start=$(date +%s)
for f in "${formats[@]}"; do
  while (( $(jobs -rp | wc -l) >= parallel )); do wait -n || true; done
  rm -f "$dir/fuzz_$f.rc"
  run_one "$f" &
done
wait
for f in "${formats[@]}"; do
  log=$dir/fuzz_$f.log
  if [[ "$(cat "$dir/fuzz_$f.rc" 2>/dev/null)" == 0 ]]; then
    execs=$(grep -a -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -a -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "fuzz: $f: ok, ${execs:-?} runs in ${seconds} s, $cov"
  else
    echo "fuzz: $f: FAILED (log: $log); the input is in $dir/artifacts/$f/" >&2
    grep -a -E 'ERROR|SUMMARY|==[0-9]+==|runtime error|Test unit written' "$log" | head -n 20 >&2 || true
    failed+=("$f")
  fi
done
echo "fuzz: ${#formats[@]} harnesses, ${seconds} s each, $(( $(date +%s) - start )) s of fuzzing"
if (( ${#failed[@]} )); then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
