#!/usr/bin/env bash
# Enforces DESIGN.md's one-way includes between layers: each folder may include only
# the layers listed for it. Prints every offending include and exits 1 if any.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
declare -A allowed=(
  [memory_planner]="memory_planner"
  [runtime]="runtime"
  [graph]="graph runtime memory_planner"
  [ops]="ops graph runtime"
  [data]="data runtime"
  [nas]="nas ops graph data runtime memory_planner"
  [apps]="apps nas ops graph data runtime memory_planner"
)
bad=0
for layer in "${!allowed[@]}"; do
  [[ -d "$root/$layer" ]] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^/"]+)\/.*/\1/' <<<"$line")
    [[ "$inc" == *"#include"* ]] && continue
    case " ${allowed[$layer]} " in
      *" $inc "*) ;;
      *) echo "layer violation: ${file#$root/} includes $inc/ (allowed: ${allowed[$layer]})"; bad=1 ;;
    esac
  done < <(grep -rn --include='*.h' --include='*.cc' -E '^#include "[a-z_]+/' "$root/$layer")
done
exit $bad
