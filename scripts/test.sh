#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test with CTest.
#   scripts/test.sh                 Release build in build/
#   scripts/test.sh --sanitize      AddressSanitizer + UBSan build in build-asan/
#   scripts/test.sh --portable      the portable reference kernels only (-DONNAS_PORTABLE=ON), build-portable/
#   scripts/test.sh --arch aarch64  cross build for 64-bit ARM (cmake/aarch64-linux-gnu.cmake) in
#                                   build-aarch64/, every test run under QEMU user-mode emulation;
#                                   also builds the host tool in build/ so that plan_same_as_host
#                                   compares the two tools' plans
#   ONNAS_TESTS="test_sgemm test_pool plan_same_as_host" scripts/test.sh ...
#                                   builds and runs only these test programs / tests
#   ONNAS_TESTS_EXCLUDE="cli_kill_resume" scripts/test.sh ...
#                                   builds everything, runs all tests but these
# --portable combines with the others (build-aarch64-portable/, build-asan-portable/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=host
sanitize=0
portable=0
while (( $# )); do
  case "$1" in
    --sanitize) sanitize=1 ;;
    --portable) portable=1 ;;
    --arch) arch=${2:?--arch needs a value (aarch64)}; shift ;;
    *) echo "test.sh: unknown argument $1 (--sanitize, --portable, --arch aarch64)" >&2; exit 2 ;;
  esac
  shift
done
[[ $arch == host || $arch == aarch64 ]] || { echo "test.sh: unknown --arch $arch (aarch64)" >&2; exit 2; }

setup_flags=(--chromium)
[[ $arch == aarch64 ]] && setup_flags+=(--aarch64)
"$root/scripts/setup.sh" "${setup_flags[@]}"

args=()
dir=$root/build
if (( sanitize )); then
  dir=$root/build-asan
  args+=(-DONNAS_SANITIZE=ON -DONNAS_BUILD_BENCH=OFF)
  export ONNAS_BUILD_TYPE=RelWithDebInfo
fi
if [[ $arch == aarch64 ]]; then
  dir=$root/build-aarch64
  # Benchmarks are not built: timings under emulation mean nothing.
  args+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" -DONNAS_BUILD_BENCH=OFF
         -DONNAS_HOST_ONNAS="$root/build/apps/onnas")
fi
if (( portable )); then
  dir=$dir-portable
  args+=(-DONNAS_PORTABLE=ON)
fi

# ONNAS_TESTS: build the test programs named there (and the tool, which the script tests
# and the plan comparison run), run only their tests.
regex=""
if [[ -n "${ONNAS_TESTS:-}" ]]; then
  targets=""
  for t in $ONNAS_TESTS; do
    if [[ $t == test_* || $t == example_* ]]; then targets+=" $t"; else targets+=" onnas"; fi
  done
  export ONNAS_TARGETS="$targets"
  regex="^(${ONNAS_TESTS// /|})(:|\$)"
  regex=${regex//||/|}
fi
if [[ $arch == aarch64 && ( -z "${ONNAS_TESTS:-}" || " $ONNAS_TESTS " == *" plan_same_as_host "* ) ]]; then
  ONNAS_BUILD_DIR=$root/build ONNAS_TARGETS=onnas "$root/scripts/build.sh"
fi
ONNAS_BUILD_DIR=$dir "$root/scripts/build.sh" "${args[@]}"
cd "$dir"
ctest_args=(--output-on-failure --parallel "$(nproc)" --timeout 900)
[[ -n $regex ]] && ctest_args+=(-R "$regex" --no-tests=error)
[[ -n "${ONNAS_TESTS_EXCLUDE:-}" ]] && ctest_args+=(-E "^(${ONNAS_TESTS_EXCLUDE// /|})(:|\$)")
ctest "${ctest_args[@]}"
