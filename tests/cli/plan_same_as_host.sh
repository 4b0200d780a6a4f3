#!/usr/bin/env bash
# The same plan everywhere: `onnas plan` of a cross build (e.g. aarch64, run under QEMU)
# must print the same plan as the host build's for the same configuration — the same
# arena, every buffer at the same offset, the same workspace sizes (SGEMM packing is
# sized for every micro-kernel of every architecture, runtime/kernels/sgemm_internal.h).
# Compares the arena bytes first, then the whole text and JSON output, and prints the
# difference if there is one.
#   tests/cli/plan_same_as_host.sh HOST_ONNAS OTHER_ONNAS
set -euo pipefail
host=${1:?usage: plan_same_as_host.sh HOST_ONNAS OTHER_ONNAS}
other=${2:?usage: plan_same_as_host.sh HOST_ONNAS OTHER_ONNAS}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A genotype for the discrete network's plan, from a one-step search by the host tool
# (tiny; it only has to be a valid genotype of this version of the tool).
tiny=(-C 4 --cells 2 --reductions 1 --nodes 2)
"$host" search --steps 1 --epochs 1 "${tiny[@]}" --batch 8 --threads 1 --out "$work/search" > "$work/search.log" 2>&1 ||
  { cat "$work/search.log" >&2; exit 1; }

configs=(
  ""
  "--program arch"
  "--mode ops+pairs+sbs --split 5 --channels 28 --classes 5 --batch 25"
  "--mode ops+pairs+sbs --sbs recompute --k-grad 1 --split 2 --channels 16 --batch 32 --optimizer sgd"
  "--network train --genotype $work/search/genotype.json ${tiny[*]} --batch 64"
)
# The number after a key in a JSON dump (first occurrence).
json_number() { grep -m1 "\"$2\":" "$1" | tr -dc '0-9'; }
# Total bytes of the buffers of one kind in a plan dump.
kind_bytes() {
  awk -v kind="$2" '/"bytes":/ { gsub(/[^0-9]/, "", $0); bytes = $0 }
                    /"kind":/ && index($0, "\"" kind "\"") { sum += bytes }
                    END { print sum + 0 }' "$1"
}

failed=0
for i in "${!configs[@]}"; do
  read -r -a args <<<"${configs[$i]}"
  for side in host other; do
    tool=$host
    [[ $side == other ]] && tool=$other
    "$tool" plan "${args[@]}" --out "$work/$side.$i.json" > "$work/$side.$i.txt" 2> "$work/$side.$i.err" ||
      { echo "plan_same_as_host: '$side' failed on: onnas plan ${configs[$i]}" >&2; cat "$work/$side.$i.err" >&2; exit 1; }
  done
  h_arena=$(json_number "$work/host.$i.json" arena_bytes)
  o_arena=$(json_number "$work/other.$i.json" arena_bytes)
  h_ws=$(kind_bytes "$work/host.$i.json" workspace)
  o_ws=$(kind_bytes "$work/other.$i.json" workspace)
  echo "onnas plan ${configs[$i]:-(defaults)}"
  echo "  arena: host $h_arena bytes, other $o_arena bytes; workspace buffers: host $h_ws bytes, other $o_ws bytes"
  if [[ "$h_arena" != "$o_arena" ]]; then
    echo "  FAIL: the arenas differ" >&2
    failed=1
  fi
  for ext in txt json; do
    if ! cmp -s "$work/host.$i.$ext" "$work/other.$i.$ext"; then
      echo "  FAIL: the $ext output differs (host < > other):" >&2
      diff "$work/host.$i.$ext" "$work/other.$i.$ext" | head -40 >&2 || true
      failed=1
    fi
  done
done
(( failed == 0 )) && echo "plan_same_as_host: ${#configs[@]} configurations, identical plans"
exit $failed
