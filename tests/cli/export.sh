#!/usr/bin/env bash
# Deployment (issue 21): a model trained from a DARTS genotype string that uses every
# candidate op (a stride-2 skip_connect, a factorized reduce, pools, every conv) is
#   - evaluated alone on a folder that holds only the test images (the model file
#     carries its space, genotype, normalization and class count),
#   - planned for inference at batch 1 (`plan --network infer`),
#   - exported as ONNX (`onnas export`), checked by onnx.checker (python3-onnx) with no
#     batch norm left behind a convolution,
#   - run in ONNX Runtime (onnxruntime-node from the npm registry, installed once into
#     NPM_DIR), whose logits must equal `onnas eval --out`'s. That last step is skipped,
#     saying why, when node, npm or the package is not at hand.
#   tests/cli/export.sh path/to/onnas NPM_DIR
set -euo pipefail
onnas=${1:?usage: export.sh path/to/onnas NPM_DIR}
npm_dir=${2:?usage: export.sh path/to/onnas NPM_DIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "export: FAIL: $*" >&2; exit 1; }
# Debian's python (python3-onnx is for it), which also starts faster than a pyenv shim.
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3) || fail "python3 is needed"
data=/usr/share/datasets/fashion-mnist
[[ -e $data/t10k-images-idx3-ubyte.gz ]] || fail "no Fashion-MNIST in $data (scripts/setup.sh installs dataset-fashion-mnist)"

genotype="Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_3x3', 0), ('conv_1x5_5x1', 2), \
('conv_3x3', 1), ('dil_conv_5x5', 3)], normal_concat=range(2, 5), reduce=[('skip_connect', 0), ('max_pool_3x3', 1), \
('avg_pool_3x3', 0), ('sep_conv_5x5', 2), ('skip_connect', 1), ('conv_3x3', 3)], reduce_concat=range(2, 5))"
/usr/bin/time -f "%M" -o train.maxrss "$onnas" train --genotype "$genotype" -C 4 --cells 3 --reductions 1 --nodes 3 \
  --limit 512 --batch 32 --steps 8 --epochs 1 --threads 2 --out t --json > train.json 2> train.err ||
  fail "train: $(tail -3 train.err)"
# train and eval keep to the plan they print: peak RSS (GNU time's ru_maxrss) within
# 10% of plan + data + the fixed overhead, the evaluation sharing the training's arena.
within_plan() {  # NAME JSON MAXRSS_FILE
  "$python" - "$@" <<'PY' || fail "$1: peak RSS beyond its plan"
import json, sys
name, doc, maxrss = sys.argv[1], json.loads(open(sys.argv[2]).read().splitlines()[-1]), int(open(sys.argv[3]).read()) * 1024
m = doc["memory"]
assert m["plan_bytes"] > 0 and m["overhead_bytes"] > 0 and "program tables" in m["plan"], m
assert m["within_bound"] and maxrss <= 1.10 * m["bound_bytes"], (maxrss, m)
print(f"export: {name} peak RSS {maxrss / 2**20:.2f} MiB of {m['bound_bytes'] / 2**20:.2f} MiB planned")
PY
}
within_plan train train.json train.maxrss
grep -q "test evaluation" train.err || fail "train: the plan does not name the test evaluation's share of the arena"

# Alone: a folder with the test files only; nothing else on the command line.
mkdir test-only
ln -s "$data"/t10k-images-idx3-ubyte.gz "$data"/t10k-labels-idx1-ubyte.gz test-only/
/usr/bin/time -f "%M" -o eval.maxrss "$onnas" eval --model t/model.safetensors --data-format idx --data test-only \
  --limit 64 --out predictions.jsonl --json > eval.json 2> eval.err || fail "eval alone: $(tail -3 eval.err)"
within_plan eval eval.json eval.maxrss
"$python" -c 'import json, sys; d = json.load(open("eval.json")); assert d["images"] == 64, d' || fail "eval: $(cat eval.json)"
[[ $(wc -l < predictions.jsonl) == 64 ]] || fail "eval --out: expected 64 lines"
echo "export: eval alone on a test-only folder: $(grep '^test accuracy' eval.err)"

"$onnas" plan --network infer --model t/model.safetensors --json > plan.json 2> plan.err || fail "plan infer: $(tail -3 plan.err)"
"$python" -c 'import json; d = json.load(open("plan.json")); assert d["batch"] == 1 and d["total_bytes"] > d["arena_bytes"] > 0, d' ||
  fail "plan --network infer: $(cat plan.json)"
echo "export: inference at batch 1 plans $("$python" -c 'import json; print(json.load(open("plan.json"))["total_bytes"])') bytes"

"$onnas" export --model t/model.safetensors --out net.onnx --json > export.json 2> export.err || fail "export: $(tail -3 export.err)"
folded=$("$python" -c 'import json; print(json.load(open("export.json"))["folded_batch_norms"])')
(( folded > 0 )) || fail "export folded no batch norm"
echo "export: $(cat export.err)"

# The ONNX checker (Debian's python3-onnx, for Debian's python).
if "$python" -c 'import onnx' 2> /dev/null; then
  "$python" - net.onnx <<'EOF' || fail "onnx.checker refused net.onnx"
import sys
import onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
producers = {o: n for n in m.graph.node for o in n.output}
behind_conv = [n.name for n in m.graph.node
               if n.op_type == "BatchNormalization" and producers.get(n.input[0]) is not None
               and producers[n.input[0]].op_type == "Conv"]
assert not behind_conv, f"batch norms left behind a convolution: {behind_conv}"
allowed = {"Sub", "Mul", "Conv", "Relu", "Add", "Concat", "Slice", "MaxPool", "AveragePool", "BatchNormalization",
           "GlobalAveragePool", "Flatten", "Gemm"}
assert {n.op_type for n in m.graph.node} <= allowed, {n.op_type for n in m.graph.node} - allowed
dims = m.graph.input[0].type.tensor_type.shape.dim
assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 28, 28], dims
print(f"export: onnx.checker (onnx {onnx.__version__}) passes: {len(m.graph.node)} nodes, opset {m.opset_import[0].version}")
EOF
elif [[ -n "${CI:-}" ]]; then
  fail "python3-onnx is not installed (scripts/setup.sh installs it)"
else
  echo "export: SKIP onnx.checker: $python has no onnx module (apt-get install python3-onnx)"
fi

# ONNX Runtime through onnxruntime-node, installed once into $npm_dir. Its install
# script fetches GPU libraries from nuget.org; --ignore-scripts keeps the CPU runtime
# the package ships.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  echo "export: SKIP the ONNX Runtime comparison: node and npm are not installed"
  exit 0
fi
if [[ ! -d $npm_dir/node_modules/onnxruntime-node ]]; then
  mkdir -p "$npm_dir"
  if ! (cd "$npm_dir" && npm install --no-audit --no-fund --ignore-scripts onnxruntime-node > npm.log 2>&1); then
    echo "export: SKIP the ONNX Runtime comparison: npm install onnxruntime-node failed: $(tail -2 "$npm_dir/npm.log")"
    rm -rf "$npm_dir/node_modules"
    exit 0
  fi
fi
NODE_PATH=$npm_dir/node_modules node "$here/onnx_compare.js" net.onnx test-only/t10k-images-idx3-ubyte.gz predictions.jsonl 1e-4 ||
  fail "ONNX Runtime's logits differ from onnas eval's"
echo "export: all passed"
