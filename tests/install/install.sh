#!/usr/bin/env bash
# The installed package (issue 21): `cmake --install` of this build into a fresh prefix,
# then a separate project (tests/install/consumer) configured with find_package(onnas),
# built against it and run (a graph built, differentiated, planned, one step run).
#   tests/install/install.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -euo pipefail
build=${1:?usage: install.sh BUILD_DIR CONSUMER_SOURCE_DIR}
consumer=${2:?usage: install.sh BUILD_DIR CONSUMER_SOURCE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install: FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log" || fail "cmake --install: $(tail -5 "$work/install.log")"
for f in onnasConfig.cmake onnasConfigVersion.cmake onnasTargets.cmake ir.h op_list.inc libonnas_graph.a; do
  [[ -n $(find "$work/prefix" -name "$f") ]] || fail "not installed: $f"
done
[[ -x "$work/prefix/bin/onnas" ]] || fail "the tool is not installed"
[[ -e "$work/prefix/share/bash-completion/completions/onnas" ]] || fail "the bash completion is not installed"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$consumer" -B "$work/consumer" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" 2>&1 || fail "configure: $(tail -8 "$work/configure.log")"
cmake --build "$work/consumer" > "$work/build.log" 2>&1 || fail "build: $(tail -15 "$work/build.log")"
"$work/consumer/consumer" || fail "the consumer failed"
echo "install: installed, found with find_package(onnas 0.1), built and run from $work/prefix"
