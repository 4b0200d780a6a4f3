#!/usr/bin/env bash
# Accuracy of every memory mode on the full Fashion-MNIST task (issue 17): searches in
# full, ops, ops+pairs and ops+pairs+sbs (split 4) with the same number of steps and
# seeds, random genotypes of the same space as the control, every genotype trained the
# same way; then a table of test accuracy (mean and spread per mode). sbs4-decided is
# sbs4 with alpha's temperature annealed 1 -> 0.1 and the architecture step at 3e-2, the
# flags that end a 600-step search decided (README, "Deciding the search"); the other
# modes keep the temperature at 1 (--temperature 1). All with a constant architecture
# rate: the searches ran before the defaults became an anneal with a cosine rate.
#
# Long (hours on two cores): every part is resumable. Run it again after an
# interruption and it continues (finished parts are skipped, a search or training with
# a checkpoint resumes from it).
#   bench/mode_accuracy.sh                      runs/mode_accuracy/, the defaults below
#   SEEDS="1 2 3" SEARCH_STEPS=937 TRAIN_EPOCHS=20 THREADS=2 bench/mode_accuracy.sh
#   bench/mode_accuracy.sh --table              only the table of what has finished
#   MODES="sbs4 full" bench/mode_accuracy.sh    train these genotypes first (the rest follow)
# Trainings are kept per number of epochs (train-e20-full-s1/, ...), so a quick table with
# short trainings (TRAIN_EPOCHS=4) and the full one can sit side by side.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
onnas=${ONNAS:-$root/build/apps/onnas}
out=${OUT:-$root/runs/mode_accuracy}
seeds=${SEEDS:-1 2}
search_steps=${SEARCH_STEPS:-600}
train_epochs=${TRAIN_EPOCHS:-20}
threads=${THREADS:-1}
arch_lr=${ARCH_LR:-3e-3}
all_modes="full ops ops+pairs sbs4 sbs4-decided random"
# The trainings' order: MODES first, then the rest of all_modes.
train_order=$(printf '%s\n' ${MODES:-} $all_modes | awk '!seen[$0]++' | tr '\n' ' ')
for m in $train_order; do
  [[ " $all_modes " == *" $m "* ]] || { echo "mode_accuracy.sh: unknown mode '$m' in MODES (one of: $all_modes)" >&2; exit 2; }
done
mkdir -p "$out"

table() {
  ALL_MODES="$all_modes" /usr/bin/python3 - "$out" <<'PY'
# One table: a row per mode (in the script's order), for each number of training epochs
# the runs, the mean test accuracy and the spread (min - max).
import glob, json, os, statistics, sys
out = sys.argv[1]
accs = {}
for f in sorted(glob.glob(os.path.join(out, "train-e*", "result.json"))):
    epochs, name = os.path.basename(os.path.dirname(f))[len("train-e"):].split("-", 1)
    try:
        acc = json.loads(open(f).read().strip().splitlines()[-1])["test_accuracy"]
    except (ValueError, KeyError, IndexError):
        continue
    accs.setdefault((name.rsplit("-s", 1)[0], int(epochs)), []).append(100 * acc)
epochs = sorted({e for _, e in accs})
modes = [m for m in os.environ["ALL_MODES"].split() if any((m, e) in accs for e in epochs)]
head = "| genotypes from |" + "".join(f" {e} epochs: runs | mean % | spread |" for e in epochs)
print(head)
print("|---|" + "---:|---:|---:|" * len(epochs))
for m in modes:
    row = f"| {m} |"
    for e in epochs:
        a = accs.get((m, e), [])
        row += (f" {len(a)} | {statistics.mean(a):.2f} | {min(a):.2f} - {max(a):.2f} |" if a else " 0 | - | - |")
    print(row)
PY
}
[[ ${1:-} == --table ]] && { table; exit 0; }

# resumable NAME CMD...: runs CMD with --resume when NAME's checkpoint exists.
resumable() {
  local dir=$1; shift
  if [[ -e $dir/checkpoint.safetensors ]]; then "$@" --resume; else "$@"; fi
}

# Every mode names its temperature and schedule: they ran before the defaults changed.
declare -A modes=([full]="--mode full --temperature 1" [ops]="--mode ops --temperature 1"
                  [ops+pairs]="--mode ops+pairs --temperature 1" [sbs4]="--mode ops+pairs+sbs --split 4 --temperature 1"
                  [sbs4-decided]="--mode ops+pairs+sbs --split 4 --temperature 1 0.1")
declare -A mode_arch_lr=([sbs4-decided]=3e-2)
for seed in $seeds; do
  for m in full ops ops+pairs sbs4 sbs4-decided; do
    dir=$out/search-$m-s$seed
    [[ -e $dir/genotype.json ]] && continue
    # shellcheck disable=SC2086
    resumable "$dir" "$onnas" search ${modes[$m]} --steps "$search_steps" --seed "$seed" \
      --arch-lr "${mode_arch_lr[$m]:-$arch_lr}" --arch-lr-schedule constant --threads "$threads" --checkpoint-every 25 --out "$dir"
    rm -f "$dir/checkpoint.safetensors"  # a search's is several MB: kept neither locally nor in git once done
  done
  # The control: a random genotype of the same space.
  g=$out/search-random-s$seed/genotype.json
  if [[ ! -e $g ]]; then
    mkdir -p "$(dirname "$g")"
    /usr/bin/python3 - "$seed" > "$g.tmp" <<'PY'
import json, random, sys
rng = random.Random(int(sys.argv[1]))
ops = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "conv_1x5_5x1", "conv_3x3", "sep_conv_3x3", "dil_conv_3x3"]
def cell():
    return [[{"input": i, "op": rng.choice(ops)} for i in sorted(rng.sample(range(2 + j), 2))] for j in range(3)]
print(json.dumps({"normal": cell(), "reduce": cell()}, indent=2))
PY
    mv "$g.tmp" "$g"
  fi
done
for seed in $seeds; do
  for m in $train_order; do
    dir=$out/train-e$train_epochs-$m-s$seed
    [[ -e $dir/result.json ]] && continue
    resumable "$dir" "$onnas" train --genotype "$out/search-$m-s$seed/genotype.json" --epochs "$train_epochs" \
      --seed "$seed" --threads "$threads" --out "$dir" --json > "$dir.json.tmp"
    mkdir -p "$dir" && mv "$dir.json.tmp" "$dir/result.json"
    rm -f "$dir/checkpoint.safetensors"  # kept in git while under way only (.gitignore)
  done
done
table
