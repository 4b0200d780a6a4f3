#!/usr/bin/env bash
# Configures and builds into build/ (or $ONNAS_BUILD_DIR) with Ninja, Release.
# Extra arguments go to cmake's configure step (e.g. -DONNAS_SANITIZE=ON);
# $ONNAS_TARGETS (space-separated) builds only those targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${ONNAS_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=${ONNAS_BUILD_TYPE:-Release} "$@" >/dev/null
targets=()
for t in ${ONNAS_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$dir" --parallel "$(nproc)" "${targets[@]}"
