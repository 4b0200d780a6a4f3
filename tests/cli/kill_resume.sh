#!/usr/bin/env bash
# Interrupted runs (issues "Reliability" and #20): `onnas search`, `onnas train` and
# `onnas meta-train` are each killed with SIGKILL mid-run, at moments the test chooses
# (the tool's test hooks, see apps/onnas/common.h), twice:
#   - at a step between two checkpoints (ONNAS_TEST_KILL_AT_STEP): work since the last
#     checkpoint is lost and must be redone identically;
#   - inside an atomic write (ONNAS_TEST_KILL_BEFORE_RENAME): the new checkpoint's
#     temporary is written and synced, the rename never happens; the old checkpoint must
#     survive, and the temporary must be removed by the resumed run.
# Each kill must land mid-run: the process dies of SIGKILL (status 137) and the files a
# run writes only at its end do not exist yet; otherwise the test fails. Every file left
# under a real name must parse, and `--resume` must finish with the same result, byte
# for byte, as an uninterrupted run with the same seed. Also: a diverging run stops
# with one line naming the step, and with --check-numerics the op. Tiny configurations
# on Fashion-MNIST (installed by setup.sh).
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

# killed NAME HOW OUT FINAL ENV -- ARGS...: runs ARGS to OUT with the kill hook ENV;
# the run must die of SIGKILL before writing FINAL (a file written only at its end).
killed() {
  local name=$1 how=$2 out=$3 final=$4 hook=$5
  shift 6
  local status=0
  env "$hook" "$onnas" "$@" --out "$out" > /dev/null 2> "$work/$name.$how.err" || status=$?
  [[ $status == 137 ]] || fail "$name ($how): expected death by SIGKILL (status 137), got status $status: $(tail -2 "$work/$name.$how.err")"
  [[ ! -e "$out/$final" ]] || fail "$name ($how): $final exists, so the kill did not land mid-run"
  [[ -e "$out/checkpoint.safetensors" ]] || fail "$name ($how): no checkpoint was written before the kill"
  check_files "$out"
}

# resumed NAME HOW OUT RESULT REF -- ARGS...: resumes ARGS in OUT; RESULT must equal REF's.
resumed() {
  local name=$1 how=$2 out=$3 result=$4 ref=$5
  shift 6
  "$onnas" "$@" --out "$out" --resume > /dev/null 2> "$work/$name.$how.r.err" ||
    fail "$name ($how): --resume failed: $(tail -3 "$work/$name.$how.r.err")"
  cmp -s "$ref/$result" "$out/$result" || fail "$name ($how): the resumed $result differs from the uninterrupted run's"
  local left
  left=$(find "$out" -name '.*.tmp.*' | head -3)
  [[ -z $left ]] || fail "$name ($how): temporaries left behind: $left"
  echo "kill_resume: $name: killed $how, resumed, $result identical"
}

# kill_and_resume NAME FINAL RESULT STEP RENAME -- ARGS...: an uninterrupted run, then one
# killed at step STEP and one killed before its RENAME-th rename, both resumed.
kill_and_resume() {
  local name=$1 final=$2 result=$3 step=$4 rename=$5
  shift 6
  local ref=$work/$name.ref
  "$onnas" "$@" --out "$ref" > /dev/null 2> "$work/$name.ref.err" || fail "$name: uninterrupted run failed: $(tail -3 "$work/$name.ref.err")"

  killed "$name" "at step $step" "$work/$name.step" "$final" "ONNAS_TEST_KILL_AT_STEP=$step" -- "$@"
  resumed "$name" "at step $step" "$work/$name.step" "$result" "$ref" -- "$@"

  local out=$work/$name.write
  killed "$name" "inside write $rename" "$out" "$final" "ONNAS_TEST_KILL_BEFORE_RENAME=$rename" -- "$@"
  local temps
  temps=$(find "$out" -name '.*.tmp.*' | wc -l)
  (( temps == 1 )) || fail "$name (inside write $rename): expected the killed write's temporary, found $temps"
  resumed "$name" "inside write $rename" "$out" "$result" "$ref" -- "$@"
}

# Search: 16 steps, a checkpoint every 2; killed at step 13 (checkpoint of step 12 kept, a
# step redone), and inside its 3rd write (the checkpoint of step 6: step 4's survives).
kill_and_resume search genotype.json supernet.safetensors 13 3 -- \
  search "${tiny[@]}" --limit 640 --batch 16 --steps 16 --checkpoint-every 2 --mode ops+pairs+sbs --split 2 --arch-log-every 3
cmp -s "$work/search.ref/genotype.json" "$work/search.step/genotype.json" || fail "search: genotypes differ"
# The search log grows on disk at each checkpoint and is cut back to the checkpoint's
# length on --resume: every step once, in order, whichever moment the kill came.
log_steps() { grep -o '"step":[0-9]*' "$1/search_log.jsonl" | cut -d: -f2 | tr '\n' ' '; }
want=$(seq 0 15 | tr '\n' ' ')
for d in ref step write; do
  [[ $(log_steps "$work/search.$d") == "$want" ]] || fail "search ($d): the log's steps are $(log_steps "$work/search.$d")"
done
# How settled the choices are (which kept edges got their op in the last quarter) comes
# from the arch records (every 3 steps): a resumed run reads the earlier ones back from
# its log (killed at step 13, it records only steps 14 and 15 itself).
settled=$(grep "kept edges have had their op since before step 12" "$work/search.ref.err") ||
  fail "search: no line on how settled the choices are: $(tail -3 "$work/search.ref.err")"
for how in "at step 13" "inside write 3"; do
  [[ $(grep "kept edges have had their op" "$work/search.$how.r.err") == "$settled" ]] ||
    fail "search ($how): resumed, the choices' settling differs: $(grep "kept edges" "$work/search.$how.r.err")"
done
# The same with alpha's temperature annealed 1 -> 0.1 (the checkpoint keeps the logits'
# temperature): 8 steps, killed at step 5 and inside its 2nd write.
kill_and_resume search-annealed genotype.json supernet.safetensors 5 2 -- \
  search "${tiny[@]}" --limit 640 --batch 16 --steps 8 --checkpoint-every 2 --mode ops+pairs+sbs --split 2 --temperature 1 0.1

# Train: 4 epochs of 16 steps, model and checkpoint after each; killed at step 41 (in
# epoch 3) and inside its 4th write (epoch 2's checkpoint: epoch 1's survives).
kill_and_resume train train_log.jsonl model.safetensors 41 4 -- \
  train "${tiny[@]}" --genotype "$work/search.ref/genotype.json" --limit 512 --batch 32 --epochs 4

# The time a resumed training reports is the whole run's: killed in its last epoch
# (step 56 of 64), the resumed process trains one epoch, yet its CPU and wall seconds
# include the three epochs of the checkpoint, and it counts two processes.
killed train "in its last epoch" "$work/train.time" train_log.jsonl "ONNAS_TEST_KILL_AT_STEP=56" -- \
  train "${tiny[@]}" --genotype "$work/search.ref/genotype.json" --limit 512 --batch 32 --epochs 4
"$onnas" inspect "$work/train.time/checkpoint.safetensors" > "$work/train.time.inspect"
"$onnas" train "${tiny[@]}" --genotype "$work/search.ref/genotype.json" --limit 512 --batch 32 --epochs 4 \
  --out "$work/train.time" --resume --json > "$work/train.time.json" 2> "$work/train.time.err" ||
  fail "train (timed): --resume failed: $(tail -3 "$work/train.time.err")"
python3 - "$work/train.time.inspect" "$work/train.time.json" <<'PY' || fail "train: the resumed run's time is not the whole run's"
import json, re, sys
md = dict(re.findall(r"^  (seconds|cpu_seconds|processes): (\S+)$", open(sys.argv[1]).read(), re.M))
t = json.load(open(sys.argv[2]))["train_time"]
print("kill_resume: train time: checkpoint", md, "resumed", t)
assert float(md["cpu_seconds"]) > 0 and md["processes"] == "1", md
assert t["whole_run"] and t["processes"] == 2, t
assert t["cpu_seconds"] >= float(md["cpu_seconds"]) and t["seconds"] >= float(md["seconds"]), (md, t)
PY
grep -q "training took .*, over 2 processes" "$work/train.time.err" || fail "train: $(grep "test accuracy" "$work/train.time.err")"

# Meta-train: 5 meta-epochs of 2 meta steps, a checkpoint (and the log) after each;
# killed at meta step 5 (in epoch 3) and inside its 3rd write (epoch 2's checkpoint).
kill_and_resume meta-train meta_cell.safetensors meta_cell.safetensors 5 3 -- \
  meta-train "${tiny[@]}" --meta-batch 2 --inner-steps 2 --query 2 --meta-epochs 5 --steps-per-epoch 2 \
  --warmup-epochs 1 --val-every 2 --val-tasks 2
# Its time counts the killed process's meta-epochs too: the last checkpoint, written by
# the resumed process, says two processes ran.
"$onnas" inspect "$work/meta-train.step/checkpoint.safetensors" > "$work/meta-train.inspect"
grep -q "^  processes: 2$" "$work/meta-train.inspect" && grep -Eq "^  cpu_seconds: [0-9.]+$" "$work/meta-train.inspect" ||
  fail "meta-train: the resumed run's time: $(grep -E "seconds|processes" "$work/meta-train.inspect")"

# A checkpoint of other settings is refused, naming the file and the setting (more
# --epochs would extend the run instead).
if "$onnas" train "${tiny[@]}" --genotype "$work/search.ref/genotype.json" --limit 512 --batch 16 --epochs 4 \
     --out "$work/train.step" --resume > /dev/null 2> "$work/other.err"; then
  fail "train --resume accepted a checkpoint of other settings"
fi
grep -q "checkpoint.safetensors was written by a run with other settings: batch (--batch) is 32 there, 16 now" \
  "$work/other.err" || fail "unclear refusal: $(cat "$work/other.err")"

# A diverging run: one line naming the step; with --check-numerics, the op.
if "$onnas" train "${tiny[@]}" --genotype "$work/search.ref/genotype.json" --limit 256 --batch 32 --epochs 1 --lr 1e30 \
     --out "$work/nan" > /dev/null 2> "$work/nan.err"; then
  fail "a training run with lr 1e30 did not stop"
fi
grep -q "produced a non-finite loss" "$work/nan.err" || fail "no clear message for a NaN loss: $(tail -2 "$work/nan.err")"
if "$onnas" train "${tiny[@]}" --genotype "$work/search.ref/genotype.json" --limit 256 --batch 32 --epochs 1 --lr 1e30 \
     --check-numerics --out "$work/nan2" > /dev/null 2> "$work/nan2.err"; then
  fail "a training run with lr 1e30 and --check-numerics did not stop"
fi
grep -q "check-numerics: .*op .* produced a non-finite value\|check-numerics: parameter" "$work/nan2.err" ||
  fail "--check-numerics did not name the op: $(tail -2 "$work/nan2.err")"
grep "error" "$work/nan2.err"
echo "kill_resume: all passed"
