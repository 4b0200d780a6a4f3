#!/usr/bin/env bash
# The tool as scripts see it (issue 21): every subcommand's --json prints exactly one
# JSON document on stdout (piped through a JSON parser) with its "memory"; the flag
# scheme (defaults in --help, renamed flags still parse, --no-X), usage errors (one
# "onnas: error:" line, exit 2, "did you mean") against runtime errors (exit 1); output
# folders (a non-empty --out refused unless --overwrite or --resume, --resume without a
# checkpoint, an extended --resume, a refused one naming the setting); ignored-flag
# warnings; progress rates; --version; the bash completion. Tiny runs on Fashion-MNIST.
#   tests/cli/interface.sh path/to/onnas
set -euo pipefail
onnas=${1:?usage: interface.sh path/to/onnas}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
space=(-C 4 --cells 2 --reductions 1 --nodes 2)
tiny=("${space[@]}" --threads 2)
fail() { echo "interface: FAIL: $*" >&2; exit 1; }
# Debian's python starts in a tenth of the time of a pyenv shim, and this runs it often.
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3) || fail "python3 is needed to parse the JSON"
fmnist=/usr/share/datasets/fashion-mnist
[[ -e $fmnist/t10k-images-idx3-ubyte.gz ]] || fail "no Fashion-MNIST in $fmnist (scripts/setup.sh installs it)"

# A small copy of Fashion-MNIST (the first 512 training and 100 test images), so that the
# many short runs below do not each read and evaluate 70,000 images.
"$python" - "$fmnist" small <<'EOF'
import gzip, os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for split, n in (("train", 512), ("t10k", 100)):
    for kind, header, size in (("images-idx3", 16, 784), ("labels-idx1", 8, 1)):
        name = f"{split}-{kind}-ubyte.gz"
        data = bytearray(gzip.open(os.path.join(src, name)).read(header + n * size))
        data[4:8] = n.to_bytes(4, "big")
        with gzip.open(os.path.join(dst, name), "wb") as f:
            f.write(bytes(data))
EOF
data=(--data small)

# json NAME -- SUBCOMMAND ARGS: runs onnas SUBCOMMAND ARGS --json; stdout must be one
# JSON document, of that subcommand, with a "memory" object; stderr holds the human text.
json() {
  local name=$1
  shift 1
  set -- "${@:2}"
  "$onnas" "$@" --json > "$name.json" 2> "$name.err" || fail "$name: onnas $* failed: $(tail -3 "$name.err")"
  # json.load, as json.tool, refuses anything after the first document.
  "$python" -c 'import json, sys
d = json.load(sys.stdin)
assert isinstance(d, dict) and d.get("command") == sys.argv[1], "not the document of " + sys.argv[1]
assert isinstance(d.get("memory"), dict) and "peak_rss_bytes" in json.dumps(d["memory"]), "no memory object"' \
    "$1" < "$name.json" 2> "$name.parse" ||
    fail "$name: stdout is not one JSON document ($(tail -1 "$name.parse")): $(head -c 300 "$name.json")"
  echo "interface: $name --json: one JSON document ($(wc -c < "$name.json") bytes)"
}
field() { "$python" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval("d" + sys.argv[2]))' "$1" "$2"; }

# usage NAME STATUS NEEDLE -- ARGS: onnas ARGS must exit with STATUS and print exactly one
# stderr line, "onnas: error: ..." holding NEEDLE.
usage() {
  local name=$1 want=$2 needle=$3
  shift 4
  local status=0
  "$onnas" "$@" > "$name.out" 2> "$name.err" || status=$?
  [[ $status == "$want" ]] || fail "$name: onnas $* exited $status, expected $want: $(cat "$name.err")"
  [[ $(wc -l < "$name.err") == 1 ]] || fail "$name: expected one line on stderr, got: $(cat "$name.err")"
  grep -q "^onnas: error: " "$name.err" || fail "$name: no 'onnas: error:' prefix: $(cat "$name.err")"
  grep -qF -- "$needle" "$name.err" || fail "$name: '$needle' not in: $(cat "$name.err")"
  [[ ! -s "$name.out" ]] || fail "$name: printed on stdout: $(cat "$name.out")"
}
# refused NAME NEEDLE -- ARGS: a runtime refusal after what the run set out to do: exit 1,
# the last stderr line "onnas: error: ..." holding NEEDLE.
refused() {
  local name=$1 needle=$2
  shift 3
  local status=0
  "$onnas" "$@" > /dev/null 2> "$name.err" || status=$?
  [[ $status == 1 ]] || fail "$name: onnas $* exited $status, expected 1: $(tail -3 "$name.err")"
  tail -1 "$name.err" | grep -q "^onnas: error: " || fail "$name: the last line is not the error: $(tail -2 "$name.err")"
  tail -1 "$name.err" | grep -qF -- "$needle" || fail "$name: '$needle' not in: $(tail -1 "$name.err")"
  [[ $(grep -c "error" "$name.err") == 1 ]] || fail "$name: more than one error line: $(cat "$name.err")"
}

# --- every subcommand's --json -----------------------------------------------------------
json search -- search "${tiny[@]}" "${data[@]}" --batch 16 --steps 3 --out s
# An annealed temperature: the search ends at END, its JSON and supernet say so.
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 3 --temperature 1 0.1 --json --out st > st.json 2> st.err ||
  fail "search --temperature 1 0.1: $(tail -3 st.err)"
t=$("$python" -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["temperature"], 3))' st.json)
[[ $t == 0.1 ]] || fail "search --temperature 1 0.1: temperature $t at the end, expected 0.1"
grep -q "alpha/beta at temperature 1, then 0.1 by the last step" st.err || fail "search does not say it anneals: $(head -3 st.err)"
"$onnas" inspect st/supernet.safetensors > st.inspect
grep -q "alpha_temperature: 0.1" st.inspect || fail "the supernet does not record its temperature"
[[ $(field search.json '["outputs"]["genotype"]') == s/genotype.json ]] || fail "search: outputs.genotype"
field search.json '["memory"]["plan"]' > /dev/null || fail "search: no MemoryReport under memory"
darts=$("$python" -c 'import json; print(json.load(open("s/genotype.json"))["darts"])')
[[ $darts == "Genotype(normal=["*"normal_concat=range(2, 4), reduce=["*"reduce_concat=range(2, 4))" ]] ||
  fail "genotype.json has no DARTS string: $darts"
field s/genotype.json '["space"]["nodes"]' | grep -qx 2 || fail "genotype.json has no space"
# The genotype file brings its space: no -C/--cells/--nodes needed.
json train -- train --genotype s/genotype.json "${data[@]}" --batch 32 --steps 2 --epochs 1 --threads 2 --out t
field train.json '["space"]["channels"]' | grep -qx 4 || fail "train did not take the genotype file's space"
json eval -- eval --model t/model.safetensors "${data[@]}" --threads 2
json plan-search -- plan "${space[@]}" --batch 8 --mode ops+pairs+sbs --split 2
[[ $(field plan-search.json '["modes"].__len__()') -ge 5 ]] || fail "plan: no modes in the JSON"
json plan-train -- plan --network train --genotype "$darts" "${space[@]}" --batch 8
json plan-infer -- plan --network infer --model t/model.safetensors --out infer-plan.json
[[ $(field plan-infer.json '["batch"]') == 1 ]] || fail "plan --network infer: batch is not 1 by default"
"$python" -m json.tool infer-plan.json > /dev/null || fail "plan --out did not write the plan as JSON"
echo '[{"name": "a", "bytes": 64, "first": 0, "last": 1}, {"name": "b", "bytes": 32, "first": 1, "last": 2}]' > list.json
json plan-buffers -- plan --buffers list.json
json inspect -- inspect t/model.safetensors
json meta-train -- meta-train "${tiny[@]}" "${data[@]}" --meta-batch 2 --inner-steps 1 --query 2 --meta-epochs 1 --steps-per-epoch 1 \
  --warmup-epochs 0 --val-every 0 --out m
json adapt -- adapt --meta-cell m/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 1 --threads 2 --out a
# An annealed temperature: logged per meta-epoch, kept in the meta cell, and adaptation
# steps alpha at the meta cell's temperature (1 -> 0.1 over 2 meta steps: 0.316 after the second).
"$onnas" meta-train "${tiny[@]}" "${data[@]}" --meta-batch 2 --inner-steps 1 --query 2 --meta-epochs 2 --steps-per-epoch 1 \
  --warmup-epochs 0 --val-every 0 --temperature 1 0.1 --out mt > /dev/null 2> mt.err || fail "meta-train --temperature: $(tail -3 mt.err)"
t=$("$python" -c 'import json, sys; print(round(json.loads(open(sys.argv[1]).readlines()[-1])["temperature"], 3))' mt/meta_log.jsonl)
[[ $t == 0.316 ]] || fail "meta-train --temperature 1 0.1: temperature $t after 2 meta steps, expected 0.316"
"$onnas" adapt --meta-cell mt/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 1 --threads 2 \
  2> ma.err > /dev/null || fail "adapt from an annealed meta cell: $(tail -3 ma.err)"
grep -q "alpha at temperature 0.316228, arch lr 0.0948683" ma.err || fail "adapt does not step alpha at the meta cell's temperature: $(grep search ma.err)"
[[ -s a/genotype.json && -s a/result.json ]] || fail "adapt --out wrote nothing"
# The inner loop's weight decay is kept in the meta cell and adaptation takes it, unless
# --weight-decay says otherwise.
"$onnas" meta-train "${tiny[@]}" "${data[@]}" --meta-batch 2 --inner-steps 1 --query 2 --meta-epochs 1 --steps-per-epoch 1 \
  --warmup-epochs 0 --val-every 0 --weight-decay 0 --temperature 1 --arch-lr 3e-4 --out mw > /dev/null 2> mw.err || fail "meta-train --weight-decay 0: $(tail -3 mw.err)"
"$onnas" adapt --meta-cell mw/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 0 --threads 2 \
  2> mwa.err > /dev/null || fail "adapt from a meta cell of weight decay 0: $(tail -3 mwa.err)"
grep -qE "lr 0.003 weight decay 0[;)]" mwa.err || fail "adapt does not take the meta cell's inner weight decay: $(grep search mwa.err)"
"$onnas" adapt --meta-cell mw/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 0 --threads 2 \
  --weight-decay 0.01 2> mwb.err > /dev/null || fail "adapt --weight-decay 0.01: $(tail -3 mwb.err)"
grep -qE "lr 0.003 weight decay 0.01[;)]" mwb.err || fail "adapt --weight-decay 0.01 is not the search's: $(grep search mwb.err)"
grep -q "weight decay" ma.err && fail "adapt from a meta cell of the default weight decay names one: $(grep search ma.err)"
# So is the inner loop's architecture rate (--arch-lr), unless --arch-lr says otherwise.
"$onnas" meta-train "${tiny[@]}" "${data[@]}" --meta-batch 2 --inner-steps 1 --query 2 --meta-epochs 1 --steps-per-epoch 1 \
  --warmup-epochs 0 --val-every 0 --arch-lr 3e-3 --temperature 1 --out mal > /dev/null 2> mal.err || fail "meta-train --arch-lr 3e-3: $(tail -3 mal.err)"
"$onnas" adapt --meta-cell mal/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 0 --threads 2 \
  2> mala.err > /dev/null || fail "adapt from a meta cell of arch lr 3e-3: $(tail -3 mala.err)"
grep -qE "; arch lr 0.003[;)]" mala.err || fail "adapt does not take the meta cell's inner arch lr: $(grep search mala.err)"
"$onnas" adapt --meta-cell mal/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 0 --threads 2 \
  --arch-lr 1e-3 2> malb.err > /dev/null || fail "adapt --arch-lr 1e-3: $(tail -3 malb.err)"
grep -qE "; arch lr 0.001[;)]" malb.err || fail "adapt --arch-lr 1e-3 is not the search's: $(grep search malb.err)"
grep -q "arch lr" mwa.err && fail "adapt from a meta cell of the search's default arch lr (3e-4, T 1) names one: $(grep search mwa.err)"
# Inner minibatches (Reptile's): the meta-train line names them; more than the support
# set holds is refused with a message naming both.
"$onnas" meta-train "${tiny[@]}" "${data[@]}" --shot 2 --inner-batch 6 --meta-batch 2 --inner-steps 2 --query 2 \
  --meta-epochs 1 --steps-per-epoch 1 --warmup-epochs 0 --val-every 0 --out mb > /dev/null 2> mb.err \
  || fail "meta-train --inner-batch 6: $(tail -3 mb.err)"
grep -q "2 inner steps of 6 images" mb.err || fail "meta-train --inner-batch 6 is not in the run's line: $(grep meta-batch mb.err)"
grep -q "warning: 1-shot meta-training" mb.err && fail "meta-train at 2 shots warns of 1-shot tasks: $(grep warning mb.err)"
grep -q "warning: 1-shot meta-training tasks, each inner step on the whole support set" mw.err \
  || fail "meta-train at 1 shot without --inner-batch does not warn: $(grep warning mw.err)"
if "$onnas" meta-train "${tiny[@]}" "${data[@]}" --inner-batch 6 --out mbx > /dev/null 2> mbx.err; then
  fail "meta-train --inner-batch 6 of a 5-image support set was accepted"
fi
grep -q "inner-batch 6: the support set holds 5 images" mbx.err || fail "meta-train --inner-batch 6 at 1 shot: $(tail -2 mbx.err)"
# The on-device default at K shots: K micro-batches of one image of every class, the
# supernet measured in groups of 5 query images by their own statistics; at 1 shot one
# batch; micro-batches of one image warn; --query-stats query-set measures with the
# whole query set's statistics.
"$onnas" adapt --meta-cell m/meta_cell.safetensors "${data[@]}" --shot 2 --query 2 --search-steps 1 --finetune-steps 1 \
  --threads 2 2> a5.err > /dev/null || fail "adapt --shot 2: $(tail -3 a5.err)"
grep -q "split 2;" a5.err || fail "adapt --shot 2 did not search in 2 micro-batches: $(grep search a5.err)"
grep -q "groups of 5 of 10 images, each by its own statistics" a5.err || fail "adapt --shot 2: $(grep memory: a5.err)"
grep -q "micro-batches of one image" a5.err && fail "adapt --shot 2 warned: $(grep warning a5.err)"
"$onnas" adapt --meta-cell m/meta_cell.safetensors "${data[@]}" --shot 2 --query 2 --search-steps 1 --finetune-steps 1 \
  --threads 2 --query-stats query-set 2> a5q.err > /dev/null || fail "adapt --query-stats query-set: $(tail -3 a5q.err)"
grep -q "(10 images at once)" a5q.err || fail "adapt --query-stats query-set: $(grep memory: a5q.err)"
"$onnas" adapt --meta-cell m/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 1 --threads 2 \
  2> a1.err > /dev/null || fail "adapt: $(tail -3 a1.err)"
grep -q "split 1;" a1.err || fail "adapt at 1 shot did not search in one batch: $(grep search a1.err)"
"$onnas" adapt --meta-cell m/meta_cell.safetensors "${data[@]}" --query 2 --search-steps 1 --finetune-steps 1 --threads 2 \
  --split 5 2> a1s.err > /dev/null || fail "adapt --split 5: $(tail -3 a1s.err)"
grep -q "warning: split 5 of a batch of 5: micro-batches of one image" a1s.err || fail "adapt --split 5 at 1 shot did not warn"
json eval-fewshot -- eval-fewshot --random-init "${tiny[@]}" "${data[@]}" --query 2 --tasks 2 --search-steps 1 --finetune-steps 1 --out f
[[ $(wc -l < f/tasks.jsonl) == 2 ]] || fail "eval-fewshot --out: expected 2 task lines"
json export -- export --model t/model.safetensors --out net.onnx
json report -- report s --out s.html
[[ $(field report.json '["report"]') == s.html && -s s.html ]] || fail "report --out"
# Without --json, results go to stdout (one line for eval) and nothing else does.
"$onnas" eval --model t/model.safetensors "${data[@]}" --threads 2 > eval.txt 2> /dev/null
grep -q "^test accuracy: " eval.txt && [[ $(wc -l < eval.txt) == 1 ]] || fail "eval's stdout: $(cat eval.txt)"

# --- usage errors: exit 2, one line --------------------------------------------------------
usage no-subcommand 2 "no subcommand given" --
usage typo 2 "did you mean 'search'?" -- serch
usage bad-option 2 "did you mean '--steps'?" -- search --stpes 3
usage bad-value 2 "--steps: must be 0 or more, not -1" -- search --steps -1
usage bad-choice 2 "--mode" -- search --mode fast
usage required 2 "--genotype is required" -- train
usage bad-temperature 2 "--temperature" -- meta-train --temperature 1 0
usage both-starts 2 "give either --meta-cell FILE" -- adapt
usage json-twice 2 "give --out FILE once" -- plan --json a.json --out b.json
# Runtime errors: exit 1.
usage missing-file 1 "missing.safetensors" -- inspect missing.safetensors
usage not-a-model 1 "is a searched supernet, not a trained network" -- eval --model s/supernet.safetensors
# A genotype of another network or space is refused by name.
other=${darts/sep_conv_3x3/skip_connect}
[[ $other != "$darts" ]] || other=${darts/dil_conv_3x3/skip_connect}
[[ $other != "$darts" ]] || other=${darts/max_pool_3x3/skip_connect}
usage other-genotype 1 "holds the network of another genotype" -- eval --model t/model.safetensors --genotype "$other"
usage other-space 1 "the genotype has 2 nodes per cell, the search space 3" -- \
  train --genotype s/genotype.json --nodes 3 "${data[@]}" --out t-other
[[ ! -e t-other ]] || fail "a refused train created its --out"
usage init-space 1 "--init s/supernet.safetensors holds a network of another shape: channels (--channels) is 4 there, 8 now" -- \
  train --genotype s/genotype.json -C 8 --init s/supernet.safetensors "${data[@]}" --steps 1 --out t-init

# --- output folders ----------------------------------------------------------------------
usage out-exists 1 "--out 't' already holds" -- train --genotype s/genotype.json "${data[@]}" --steps 1 --epochs 1 --out t
"$onnas" train --genotype s/genotype.json "${data[@]}" --batch 32 --steps 2 --epochs 1 --threads 2 --out t --overwrite \
  > /dev/null 2>&1 || fail "--overwrite was refused"
usage resume-nothing 1 "--resume: no checkpoint at" -- search "${tiny[@]}" "${data[@]}" --steps 2 --out r0 --resume
[[ ! -e r0 ]] || fail "--resume without a checkpoint left a folder"
usage out-file 1 "--out 'no/such/dir/x.json': the folder 'no/such/dir' does not exist" -- \
  plan --buffers list.json --out no/such/dir/x.json
# --resume may extend a run; another setting is refused, naming it.
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 2 --out r > /dev/null 2>&1 || fail "search for --resume"
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 4 --out r --resume > /dev/null 2> r.err ||
  fail "--resume with more --steps was refused: $(tail -2 r.err)"
grep -q "resuming from r/checkpoint.safetensors after step 2" r.err || fail "the extended run did not resume: $(cat r.err)"
refused resume-other "batch (--batch) is 16 there, 8 now" -- \
  search "${tiny[@]}" "${data[@]}" --batch 8 --steps 4 --out r --resume
# The architecture rate's schedule is a setting too (cosine: to 0 by the last step).
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 2 --arch-lr-schedule constant --out rc > /dev/null 2>&1 ||
  fail "search --arch-lr-schedule constant"
refused resume-schedule "(--arch-lr-schedule) is (absent) there, \"cosine\" now" -- \
  search "${tiny[@]}" "${data[@]}" --batch 16 --steps 4 --arch-lr-schedule cosine --out rc --resume
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 2 --arch-lr-schedule cosine --out rk 2> rk.err > /dev/null &&
  grep -q "architecture step at 0.03, cosine to 0 by the last step" rk.err || fail "search --arch-lr-schedule cosine: $(head -3 rk.err)"
# --optimizer adam-bf16: the plan holds half of adam's optimizer state, the run resumes,
# and resuming it as plain adam is refused; adam-factored holds a small part of it.
for opt in adam adam-bf16 adam-factored; do
  json "search-$opt" -- search "${tiny[@]}" "${data[@]}" --batch 16 --steps 2 --optimizer "$opt" --out "r-$opt"
done
"$python" - <<'PY' || fail "adam-bf16 does not plan half of adam's optimizer state"
import json
state = {}
for opt in ("adam", "adam-bf16", "adam-factored"):
    plan = json.load(open(f"search-{opt}.json"))["memory"]["plan"]
    state[opt] = next(v for k, v in plan.items() if k.startswith("optimizer state"))
assert 0.45 < state["adam-bf16"] / state["adam"] < 0.55, state
assert state["adam-factored"] < 0.5 * state["adam"], state
PY
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 3 --optimizer adam-factored --out r-adam-factored --resume \
  > /dev/null 2> rf.err || fail "--optimizer adam-factored did not resume: $(tail -2 rf.err)"
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 3 --optimizer adam-bf16 --out r-adam-bf16 --resume \
  > /dev/null 2> rb.err || fail "--optimizer adam-bf16 did not resume: $(tail -2 rb.err)"
refused resume-optimizer 'optimizer (--optimizer) is "adam-bf16" there, "adam" now' -- \
  search "${tiny[@]}" "${data[@]}" --batch 16 --steps 4 --out r-adam-bf16 --resume
# The search log lives on disk, its checkpoint records its length: a log cut shorter is
# named on --resume, not continued with a hole.
head -c 10 r-adam-factored/search_log.jsonl > cut.jsonl && mv cut.jsonl r-adam-factored/search_log.jsonl
refused resume-cut-log "fewer than the" -- \
  search "${tiny[@]}" "${data[@]}" --batch 16 --steps 4 --optimizer adam-factored --out r-adam-factored --resume

# --- the flag scheme ---------------------------------------------------------------------
"$onnas" search --help | tr -s ' \n' ' ' > help.txt  # one line: descriptions wrap
grep -qF -- "-b,--batch INT:INT in [1 - 4096] Batch size (default 32)" help.txt || fail "search --help: no default for --batch"
grep -qF -- "--lr FLOAT:NONNEGATIVE Weight learning rate, cosine schedule (default: 3e-3 adam, 0.025 sgd)" help.txt ||
  fail "search --help has no --lr"
! grep -q -- "--w-lr" help.txt || fail "a renamed flag shows in --help"
"$onnas" train --help | tr -s ' \n' ' ' | grep -qF -- "--flip,--no-flip Random horizontal flips (default: on)" ||
  fail "train --help: no --flip / --no-flip"
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 1 --w-lr 0.01 --a-lr 1e-3 --out old > /dev/null 2> old.err ||
  fail "the renamed --w-lr / --a-lr no longer parse: $(tail -2 old.err)"
grep -q "warning: --w-lr is now --lr" old.err || fail "no warning for the renamed --w-lr"
"$onnas" plan --buffers list.json --json old-plan.json > /dev/null 2> old-plan.err || fail "plan --json FILE"
grep -q "'--json old-plan.json' is now '--out old-plan.json'" old-plan.err && [[ -s old-plan.json ]] ||
  fail "plan --json FILE (the old form): $(cat old-plan.err)"
"$onnas" train --genotype s/genotype.json "${data[@]}" --batch 32 --steps 1 --epochs 1 --flip false --threads 2 --out fl \
  > /dev/null 2> fl.err || fail "'--flip false' no longer parses: $(cat fl.err)"
grep -q "'--flip false' is now '--no-flip'" fl.err || fail "no warning for '--flip false'"

# --- warnings and progress -----------------------------------------------------------------
"$onnas" plan "${space[@]}" --batch 8 --sbs checkpoint --k-grad 3 > /dev/null 2> ignored.err
grep -q "warning: --sbs is ignored: --mode full runs no step-by-step" ignored.err &&
  grep -q "warning: --k-grad is ignored" ignored.err || fail "ignored flags gave no warning: $(cat ignored.err)"
grep -q "epoch 1/1 done .* steps/s" search.err || fail "search's progress has no rate: $(grep epoch search.err)"
grep -q "^test done .* images/s" train.err || fail "train's evaluation shows no progress: $(cat train.err)"
# search anneals alpha's temperature 1 -> 0.1 by default; without it (--temperature 1) and at
# DARTS's architecture rate, a search of a few steps leaves alpha where it started: the end
# says so, with a hint naming the anneal.
grep -q "alpha/beta at temperature 1, then 0.1 by the last step" search.err ||
  fail "the default search does not anneal alpha's temperature: $(head -3 search.err)"
"$onnas" search "${tiny[@]}" "${data[@]}" --batch 16 --steps 2 --temperature 1 --arch-lr 3e-4 --out su > /dev/null 2> su.err ||
  fail "search --temperature 1: $(tail -3 su.err)"
! grep -q "alpha/beta at temperature" su.err || fail "search --temperature 1 still anneals: $(head -3 su.err)"
grep -q "warning: alpha is undecided: .* search longer (--steps), raise --arch-lr, or anneal alpha (--temperature 1 0.1)" su.err ||
  fail "a search of a few steps did not warn that alpha is undecided: $(tail -3 su.err)"
# A decided softmax whose argmax still moves: with a huge constant architecture step and T
# down to 0.01 every kept edge changes its op in the last quarter; the end says so, and
# --json counts them. With the defaults' cosine schedule the choices hold and nothing is said.
"$onnas" search "${tiny[@]}" --limit 640 --batch 16 --steps 24 --arch-log-every 1 --arch-lr 3e-1 --temperature 1 0.01 \
  --arch-lr-schedule constant --json --out sx > sx.json 2> sx.err || fail "search --temperature 1 0.01: $(tail -3 sx.err)"
grep -q "0 of 8 kept edges have had their op since before step 15 (the last quarter), 8 got it later" sx.err &&
  grep -q "warning: alpha is unsettled: the op of 8 of the 8 kept edges changed in the last quarter" sx.err ||
  fail "an unsettled search did not say so: $(tail -3 sx.err)"
[[ $(field sx.json '["settled"]["changed_late"]') == 8 ]] || fail "search --json: settled is $(field sx.json '["settled"]')"
[[ $(field sx.json '["search_time"]["processes"]') == 1 && $(field sx.json '["search_time"]["cpu_seconds"] > 0') == True ]] &&
  grep -q "^[0-9]* steps took .* of CPU$" sx.err || fail "search: its time: $(field sx.json '["search_time"]')"
"$onnas" search "${tiny[@]}" --limit 640 --batch 16 --steps 24 --arch-log-every 1 --arch-lr 3e-1 --out sy 2> sy.err > /dev/null ||
  fail "search --arch-lr 3e-1: $(tail -3 sy.err)"
grep -q "kept edges have had their op since before step 15" sy.err && ! grep -q "unsettled" sy.err ||
  fail "a settled search: $(tail -3 sy.err)"
# Without arch records the settling is not counted, and the end says so rather than nothing.
"$onnas" search "${tiny[@]}" --limit 640 --batch 16 --steps 24 --arch-log-every 0 --arch-lr 3e-1 --json --out sn \
  > sn.json 2> sn.err || fail "search --arch-log-every 0: $(tail -3 sn.err)"
grep -q "how settled the choices are is not counted: no arch record before step 15" sn.err &&
  ! grep -q "kept edges have had their op" sn.err || fail "a search without arch records: $(tail -3 sn.err)"
[[ $(field sn.json '["settled"]') == None ]] || fail "search --json without records: settled is $(field sn.json '["settled"]')"

# --- --version and the bash completion -------------------------------------------------------
"$onnas" --version > version.txt
grep -Eq "^onnas [0-9]+\.[0-9]+\.[0-9]+ \((Release|Debug|RelWithDebInfo|MinSizeRel) build" version.txt &&
  grep -q "^kernels: " version.txt || fail "--version: $(cat version.txt)"
"$onnas" --completion bash > onnas.bash
complete_words() {  # complete_words WORD... : what the completion offers for the last word
  # shellcheck disable=SC1091
  bash -c 'source onnas.bash; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _onnas; echo "${COMPREPLY[*]}"' _ "$@"
}
[[ $(complete_words onnas se) == search ]] || fail "completion of 'onnas se': $(complete_words onnas se)"
[[ $(complete_words onnas search --mod) == --mode ]] || fail "completion of --mod: $(complete_words onnas search --mod)"
[[ $(complete_words onnas search --mode ops) == "ops ops+pairs ops+pairs+sbs" ]] ||
  fail "completion of '--mode ops': $(complete_words onnas search --mode ops)"
[[ $(complete_words onnas search --w-) == "" ]] || fail "completion offers a renamed flag"
[[ $(complete_words onnas export --mod) == --model ]] || fail "completion of 'export --mod'"
echo "interface: all passed"
