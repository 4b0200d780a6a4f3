#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test with CTest.
#   scripts/test.sh                 Release build in build/
#   scripts/test.sh --sanitize      AddressSanitizer + UBSan build in build-asan/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
args=()
dir=$root/build
if [[ "${1:-}" == "--sanitize" ]]; then
  dir=$root/build-asan
  args=(-DONNAS_SANITIZE=ON -DONNAS_BUILD_BENCH=OFF)
  export ONNAS_BUILD_TYPE=RelWithDebInfo
fi
ONNAS_BUILD_DIR=$dir "$root/scripts/build.sh" "${args[@]}"
cd "$dir"
ctest --output-on-failure --parallel "$(nproc)" --timeout 900
