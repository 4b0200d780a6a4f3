#!/usr/bin/env bash
# Interrupted runs (issue "Reliability"): `onnas search`, `onnas train` and
# `onnas meta-train` are each killed with SIGKILL at a random moment after their first
# checkpoint; every file left under a real name must still parse, and `--resume` must
# finish with the same result, byte for byte, as an uninterrupted run with the same
# seed. Also: a diverging run stops with one line naming the step, and with
# --check-numerics the op. Tiny configurations on Fashion-MNIST (installed by setup.sh).
#   tests/cli/kill_resume.sh path/to/onnas
set -euo pipefail
onnas=${1:?usage: kill_resume.sh path/to/onnas}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tiny=(-C 4 --cells 2 --reductions 1 --nodes 2 --threads 2)

fail() { echo "kill_resume: FAIL: $*" >&2; exit 1; }

# Every safetensors file under a real name in $1 must parse.
check_files() {
  local f
  for f in "$1"/*.safetensors; do
    [[ -e "$f" ]] || continue
    "$onnas" inspect "$f" > /dev/null 2> "$work/inspect.err" || fail "$f does not parse after SIGKILL: $(cat "$work/inspect.err")"
  done
  for f in "$1"/*.json; do
    [[ -e "$f" ]] || continue
    tail -c 3 "$f" | grep -q '}' || fail "$f is cut short after SIGKILL"
  done
}

# kill_and_resume NAME OUT_A OUT_B RESULT_FILE -- ARGS...: run ARGS to OUT_A; run them
# to OUT_B, kill at a random moment after the first checkpoint, resume, compare.
kill_and_resume() {
  local name=$1 a=$2 b=$3 result=$4
  shift 5
  "$onnas" "$@" --out "$a" > /dev/null 2> "$work/$name.a.err" || fail "$name: uninterrupted run failed: $(tail -3 "$work/$name.a.err")"
  "$onnas" "$@" --out "$b" > /dev/null 2> "$work/$name.b.err" &
  local pid=$!
  # Up to 10 minutes for the first checkpoint: seconds natively, minutes under emulation.
  for _ in $(seq 1 12000); do
    [[ -e "$b/checkpoint.safetensors" ]] && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  sleep "0.$(( RANDOM % 5 ))$(( RANDOM % 10 ))"
  local when="while running"
  kill -0 "$pid" 2> /dev/null || when="after it had finished (the resume only re-reads the last checkpoint)"
  kill -9 "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  [[ -e "$b/checkpoint.safetensors" ]] || fail "$name: no checkpoint was written"
  check_files "$b"
  "$onnas" "$@" --out "$b" --resume > /dev/null 2> "$work/$name.r.err" || fail "$name: --resume failed: $(tail -3 "$work/$name.r.err")"
  cmp -s "$a/$result" "$b/$result" || fail "$name: the resumed $result differs from the uninterrupted run's"
  echo "kill_resume: $name: killed $when, resumed, $result identical"
}

kill_and_resume search "$work/sa" "$work/sb" supernet.safetensors -- \
  search "${tiny[@]}" --limit 640 --batch 16 --steps 16 --checkpoint-every 2 --mode ops+pairs+sbs --split 2
cmp -s "$work/sa/genotype.json" "$work/sb/genotype.json" || fail "search: genotypes differ"

kill_and_resume train "$work/ta" "$work/tb" model.safetensors -- \
  train "${tiny[@]}" --genotype "$work/sa/genotype.json" --limit 512 --batch 32 --epochs 4

kill_and_resume meta-train "$work/ma" "$work/mb" meta_cell.safetensors -- \
  meta-train "${tiny[@]}" --meta-batch 2 --inner-steps 2 --query 2 --meta-epochs 5 --steps-per-epoch 2 \
  --warmup-epochs 1 --val-every 2 --val-tasks 2

# A checkpoint of other settings is refused, naming the file.
if "$onnas" train "${tiny[@]}" --genotype "$work/sa/genotype.json" --limit 512 --batch 32 --epochs 5 --out "$work/tb" \
     --resume > /dev/null 2> "$work/other.err"; then
  fail "train --resume accepted a checkpoint of other settings"
fi
grep -q "checkpoint.safetensors was written by a run with other settings" "$work/other.err" || fail "unclear refusal: $(cat "$work/other.err")"

# A diverging run: one line naming the step; with --check-numerics, the op.
if "$onnas" train "${tiny[@]}" --genotype "$work/sa/genotype.json" --limit 256 --batch 32 --epochs 1 --lr 1e30 \
     --out "$work/nan" > /dev/null 2> "$work/nan.err"; then
  fail "a training run with lr 1e30 did not stop"
fi
grep -q "produced a non-finite loss" "$work/nan.err" || fail "no clear message for a NaN loss: $(tail -2 "$work/nan.err")"
if "$onnas" train "${tiny[@]}" --genotype "$work/sa/genotype.json" --limit 256 --batch 32 --epochs 1 --lr 1e30 \
     --check-numerics --out "$work/nan2" > /dev/null 2> "$work/nan2.err"; then
  fail "a training run with lr 1e30 and --check-numerics did not stop"
fi
grep -q "check-numerics: .*op .* produced a non-finite value\|check-numerics: parameter" "$work/nan2.err" ||
  fail "--check-numerics did not name the op: $(tail -2 "$work/nan2.err")"
grep "error" "$work/nan2.err"
echo "kill_resume: all passed"
