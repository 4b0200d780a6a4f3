#!/usr/bin/env bash
# Soak test (CTest label `soak`): a long run of many small sampled search steps must
# not grow in memory. The script samples the tool's resident memory itself (VmRSS of
# /proc/<pid>/status, so nothing depends on the tool's own reporting) each time the
# run writes a checkpoint (every 100 steps), skips a warm-up, and fails if memory
# grows beyond noise over the rest.
#   tests/soak/soak.sh path/to/onnas search|meta-train [STEPS]
# search: STEPS sampled search steps (default 2000) of ops+pairs+sbs on a tiny space;
# meta-train: STEPS inner search steps (default 2000: STEPS/4 meta steps of 2 tasks x 2
# inner steps, each followed by the task and cell folds).
set -euo pipefail
onnas=${1:?usage: soak.sh path/to/onnas search|meta-train [STEPS]}
what=${2:?usage: soak.sh path/to/onnas search|meta-train [STEPS]}
steps=${3:-${ONNAS_SOAK_STEPS:-2000}}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=
tiny=(-C 4 --cells 2 --reductions 1 --nodes 2 --threads 2 --mode ops+pairs+sbs --out "$work/out")
case $what in
  search)
    # 4,000 images: a training half of 250 batches of 8, so 2,000 steps are 8 epochs.
    (( steps % 250 == 0 )) || { echo "soak: search steps must be a multiple of 250" >&2; exit 2; }
    args=(search "${tiny[@]}" --limit 4000 --batch 8 --steps 250 --epochs $(( steps / 250 )) --checkpoint-every 100) ;;
  meta-train)
    # 25 meta steps (100 inner steps) per meta-epoch, a checkpoint after each.
    (( steps % 100 == 0 )) || { echo "soak: meta-train steps must be a multiple of 100" >&2; exit 2; }
    args=(meta-train "${tiny[@]}" --meta-batch 2 --inner-steps 2 --query 2 --steps-per-epoch 25
          --meta-epochs $(( steps / 100 )) --warmup-epochs 1 --val-every 0) ;;
  *) echo "soak: unknown run '$what'" >&2; exit 2 ;;
esac

start=$(date +%s)
"$onnas" "${args[@]}" > /dev/null 2> "$work/err" &
pid=$!
ckpt=$work/out/checkpoint.safetensors
last=
samples=()
while kill -0 "$pid" 2> /dev/null; do
  inode=$(stat -c %i "$ckpt" 2> /dev/null || true)
  if [[ -n $inode && $inode != "$last" ]]; then
    last=$inode
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2> /dev/null || true)
    [[ -n $rss ]] && samples+=("$rss")
  fi
  sleep 0.2
done
status=0
wait "$pid" || status=$?
pid=
seconds=$(( $(date +%s) - start ))
(( status == 0 )) || { echo "soak: $what failed (status $status): $(tail -3 "$work/err")" >&2; exit 1; }

# The first 30% of the samples (at least 2) are warm-up: programs compiled for new
# samples, the arena grown to the largest plan, allocator pools filled. Memory then
# wobbles by a few MiB as compiled samples come and go; a leak shows as a trend. Over
# the rest: the median of its last third against the median of its first third, and
# the least-squares slope projected over the window; both must stay within 4 MiB + 1%.
printf '%s\n' "${samples[@]}" | awk -v what="$what" -v steps="$steps" -v seconds="$seconds" '
  function median(from, to,    k, i, j, t, v) {
    k = 0
    for (i = from; i <= to; ++i) v[++k] = rss[i]
    for (i = 2; i <= k; ++i) for (j = i; j > 1 && v[j - 1] > v[j]; --j) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
  }
  { rss[NR] = $1 }
  END {
    n = NR
    if (n < 8) { printf "soak: %s: only %d memory samples (expected one per 100 steps)\n", what, n; exit 1 }
    w = int(n * 0.3); if (w < 2) w = 2
    m = n - w
    sx = sy = sxx = sxy = 0
    for (i = w + 1; i <= n; ++i) { x = i - w - 1; sx += x; sy += rss[i]; sxx += x * x; sxy += x * rss[i] }
    trend = (m * sxy - sx * sy) / (m * sxx - sx * sx) * (m - 1)   # kB over the window
    third = int(m / 3); if (third < 1) third = 1
    early = median(w + 1, w + third)
    late = median(n - third + 1, n)
    growth = late - early
    allow = 4096 + 0.01 * early
    line = ""
    for (i = 1; i <= n; ++i) line = line sprintf("%s%.1f", i > 1 ? " " : "", rss[i] / 1024)
    printf "soak: %s: %d steps in %d s; VmRSS every ~100 steps (MiB): %s\n", what, steps, seconds, line
    printf "soak: %s: after %d warm-up samples: median %.1f -> %.1f MiB (%+.2f), trend %+.2f MiB; allowed %.2f MiB\n",
           what, w, early / 1024, late / 1024, growth / 1024, trend / 1024, allow / 1024
    if (growth > allow || trend > allow) { printf "soak: %s: FAIL: memory grows\n", what; exit 1 }
  }'
