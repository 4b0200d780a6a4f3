#!/usr/bin/env bash
# The Fashion-MNIST few-shot split is the user's to choose (--meta-test-classes): a meta
# cell records the held-out classes it was trained for, `onnas inspect` shows them, and
# `onnas adapt` / `eval-fewshot` draw their tasks from them unless told otherwise; a
# list naming no Fashion-MNIST class is refused with one line. Adaptation searches with
# the meta cell's inner optimizer and learning rate unless told. Tiny configuration.
#   tests/cli/fewshot_split.sh path/to/onnas
set -euo pipefail
onnas=${1:?usage: fewshot_split.sh path/to/onnas}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tiny=(-C 4 --cells 2 --reductions 1 --nodes 2 --threads 2)
fail() { echo "fewshot_split: FAIL: $*" >&2; exit 1; }

"$onnas" meta-train "${tiny[@]}" --meta-batch 1 --inner-steps 1 --query 1 --meta-epochs 1 --steps-per-epoch 1 \
  --val-every 0 --optimizer sgd --lr 0.07 --meta-test-classes 8,0,2,5,1 --out "$work/m" > /dev/null 2> "$work/train.err" ||
  fail "meta-train: $(tail -3 "$work/train.err")"
grep -q "meta-train classes 3,4,6,7,9 (train file)" "$work/train.err" || fail "meta-train did not hold out 0,1,2,5,8"
# Its warm-up (2 meta-epochs by default) covers the run: one warning, no annealing announced.
grep -q "warning: the warm-up (2 meta-epochs) covers the whole run" "$work/train.err" && ! grep -q "then 0.1 over" "$work/train.err" ||
  fail "meta-train announced an annealing its warm-up leaves no room for: $(grep -E 'temperature|warm-up' "$work/train.err")"
grep -q "what meta-training decided" "$work/train.err" && grep -q "warning: alpha is undecided: .*; meta-train longer (--meta-epochs)" \
  "$work/train.err" || fail "meta-train did not show what alpha decided: $(tail -4 "$work/train.err")"
"$onnas" inspect "$work/m/meta_cell.safetensors" > "$work/inspect.out"
grep -q "meta_test_classes: 0,1,2,5,8" "$work/inspect.out" || fail "the meta cell does not record its held-out classes"

"$onnas" adapt --meta-cell "$work/m/meta_cell.safetensors" --search-steps 1 --finetune-steps 1 --query 1 --threads 2 \
  > /dev/null 2> "$work/adapt.err" || fail "adapt: $(tail -3 "$work/adapt.err")"
grep -q "meta-test task 0 (classes 0,1,2,5,8)" "$work/adapt.err" || fail "adapt did not take the meta cell's split"
grep -q "sgd lr 0.07; arch lr 0.03; classifier from zero" "$work/adapt.err" || fail "adapt did not search as the meta cell's inner loop"
"$onnas" eval-fewshot --meta-cell "$work/m/meta_cell.safetensors" --meta-test-classes 1,3,4,6,9 --tasks 1 \
  --search-steps 1 --finetune-steps 1 --query 1 --threads 2 > /dev/null 2> "$work/eval.err" ||
  fail "eval-fewshot: $(tail -3 "$work/eval.err")"
grep -q "1 meta-test tasks (classes 1,3,4,6,9)" "$work/eval.err" || fail "--meta-test-classes did not override the meta cell's"
"$onnas" adapt --random-init -C 4 --cells 2 --reductions 1 --nodes 2 --search-steps 1 --finetune-steps 1 --query 1 \
  --threads 2 > /dev/null 2> "$work/random.err" || fail "adapt --random-init: $(tail -3 "$work/random.err")"
grep -q "(classes 1,3,4,6,9).*adam lr 0.003" "$work/random.err" || fail "a random start did not take the default split and adam 3e-3"

if "$onnas" meta-train "${tiny[@]}" --meta-test-classes 1,10 --out "$work/bad" > /dev/null 2> "$work/bad.err"; then
  fail "a class out of range was accepted"
fi
[[ $(wc -l < "$work/bad.err") -eq 1 ]] && grep -q "class 10 is not a Fashion-MNIST class" "$work/bad.err" ||
  fail "a class out of range: expected one line naming it, got: $(cat "$work/bad.err")"
echo "fewshot_split: ok"
