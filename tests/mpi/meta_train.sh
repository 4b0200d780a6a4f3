#!/usr/bin/env bash
# Scale-out over MPI (issue 10; only in the -DONNAS_MPI=ON build):
#   1. mpirun -n 2 and -n 3 `onnas meta-train` give the meta cell of `mpirun -n 1` (which is
#      bit for bit the default build's), within the tolerance below;
#   2. a checkpoint written with P = 2 resumes with P = 1 to the same meta cell;
#   3. `onnas eval-fewshot` on 2 ranks prints the one-process mean and interval, exactly;
#   4. a task that throws on some rank ends the job with one line naming the rank and
#      the task (a class-folder tree with one broken image).
# Tiny configuration on Fashion-MNIST, one thread per rank.
#   tests/mpi/meta_train.sh path/to/onnas path/to/compare_tensors [path/to/mpirun]
#
# Tolerance. Task b of a meta step runs on rank b % P with the same seeds as in one
# process, so every task's difference is the same bits; only the task fold's sums are
# associated differently (each rank folds its tasks online, then the ranks' sums are
# rescaled to the global maximum and added: FoldAverage::merge's arithmetic). Those
# sums are doubles and the average is rounded to float, so a meta step's update can
# differ from one process's only where a double lands within its rounding error of a
# float rounding boundary (about 1e-9 of elements), by one float ulp, which later inner
# steps may amplify. In this configuration the meta cells of 2 and 3 ranks have been
# bit-identical to one process's; we allow rtol 1e-4 plus atol 1e-6 (elements near 0)
# so that such a rare ulp, amplified through a few meta steps, does not fail the test.
set -euo pipefail
onnas=${1:?usage: meta_train.sh path/to/onnas path/to/compare_tensors [mpirun]}
compare=${2:?usage: meta_train.sh path/to/onnas path/to/compare_tensors [mpirun]}
mpirun=${3:-mpirun}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
mpi() { local n=$1; shift; "$mpirun" -n "$n" --oversubscribe "$onnas" "$@"; }
tol=(--rtol 1e-4 --atol 1e-6)
tiny=(-C 4 --cells 2 --reductions 1 --nodes 2 --query 2 --threads 1)
meta=(meta-train "${tiny[@]}" --inner-steps 1 --meta-batch 4 --steps-per-epoch 2 --warmup-epochs 1 --val-tasks 3 --val-every 1)

fail() { echo "mpi_meta_train: FAIL: $*" >&2; exit 1; }

# 1. P = 1, 2, 3.
for p in 1 2 3; do
  mpi "$p" "${meta[@]}" --meta-epochs 2 --out "$work/p$p" > /dev/null 2> "$work/p$p.err" ||
    fail "meta-train on $p ranks failed: $(tail -3 "$work/p$p.err")"
done
for p in 2 3; do
  out=$("$compare" "$work/p1/meta_cell.safetensors" "$work/p$p/meta_cell.safetensors" "${tol[@]}") ||
    fail "the meta cell of $p ranks differs from one process's: $out"
  echo "mpi_meta_train: $p ranks against 1: $out"
done
[[ $(grep -c . "$work/p2/meta_log.jsonl") == 2 ]] || fail "rank 0 did not write one log line per meta-epoch"
grep -q "scale-out: 2 ranks" "$work/p2.err" || fail "no scale-out summary on 2 ranks"

# 2. Checkpoint after meta-epoch 1 on 2 ranks, resumed to meta-epoch 2 on 1.
mpi 2 "${meta[@]}" --meta-epochs 1 --out "$work/r" > /dev/null 2> "$work/r1.err" ||
  fail "meta-train (1 epoch, 2 ranks) failed: $(tail -3 "$work/r1.err")"
mpi 1 "${meta[@]}" --meta-epochs 2 --resume --out "$work/r" > /dev/null 2> "$work/r2.err" ||
  fail "--resume on 1 rank from a 2-rank checkpoint failed: $(tail -3 "$work/r2.err")"
out=$("$compare" "$work/p1/meta_cell.safetensors" "$work/r/meta_cell.safetensors" "${tol[@]}") ||
  fail "resumed with another P, the meta cell differs: $out"
echo "mpi_meta_train: 2 ranks, then resumed on 1, against 1: $out"

# 3. eval-fewshot: the same per-task results gathered in task order, so the same JSON.
ev=(eval-fewshot "${tiny[@]}" --meta-cell "$work/p1/meta_cell.safetensors" --tasks 5 --search-steps 1
    --finetune-steps 2 --json)
# Memory (peak RSS, the measured overhead) and times differ from run to run; the rest must not.
unmeasured() {
  python3 -c 'import json, sys; d = json.load(sys.stdin); [d.pop(k, None) for k in ("memory", "seconds")]; print(json.dumps(d, sort_keys=True))'
}
mpi 1 "${ev[@]}" 2> "$work/e1.err" | unmeasured > "$work/e1.out" ||
  fail "eval-fewshot on 1 rank failed: $(tail -3 "$work/e1.err")"
mpi 2 "${ev[@]}" 2> "$work/e2.err" | unmeasured > "$work/e2.out" ||
  fail "eval-fewshot on 2 ranks failed: $(tail -3 "$work/e2.err")"
cmp -s "$work/e1.out" "$work/e2.out" || fail "eval-fewshot on 2 ranks: $(cat "$work/e2.out") against $(cat "$work/e1.out")"
echo "mpi_meta_train: eval-fewshot on 2 ranks identical: $(head -1 "$work/e2.out")"

# 4. A broken image in one class of a folder tree: whichever task draws it fails.
pgm() { { printf 'P5\n28 28\n255\n'; head -c 784 /dev/urandom; } > "$1"; }
for c in 0 1 2 3 4 5; do
  mkdir -p "$work/tree/class$c"
  for i in a b c; do pgm "$work/tree/class$c/$i.pgm"; done
done
printf 'P5\n28 28\n255\n' > "$work/tree/class5/b.pgm"  # no pixels
if mpi 2 meta-train "${tiny[@]}" --inner-steps 1 --data-format folder --meta-train-dir "$work/tree" --meta-test-dir "$work/tree" \
     --meta-batch 4 --steps-per-epoch 4 --meta-epochs 1 --val-every 0 --out "$work/f" > /dev/null 2> "$work/f.err"; then
  fail "meta-train with a broken image succeeded on 2 ranks"
fi
line=$(grep -m1 -E '^onnas: error: rank [0-9]+ of 2: meta-train task [0-9]+ \(meta step [0-9]+, slot [0-9]+\)' \
         "$work/f.err") || fail "no line naming the rank and the task: $(head -5 "$work/f.err")"
[[ $line =~ rank\ ([0-9]+)\ of\ 2.*slot\ ([0-9]+) ]] || fail "cannot read '$line'"
(( BASH_REMATCH[2] % 2 == BASH_REMATCH[1] )) || fail "slot ${BASH_REMATCH[2]} reported by rank ${BASH_REMATCH[1]}: $line"
grep -q 'class5/b.pgm' <<< "$line" || fail "the message does not name the broken file: $line"
echo "mpi_meta_train: a broken task ends the job: $line"
echo "mpi_meta_train: ok"
