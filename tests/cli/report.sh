#!/usr/bin/env bash
# `onnas report`: the HTML page of a search (alpha and beta over the steps, the chosen
# cells). A tiny search on Fashion-MNIST logs alpha/beta every 4 steps; the report must be
# self-contained (no script, no outside file or address), hold a chart per edge and node
# and both cell graphs, and name every op; broken inputs get one clear line. Then it is
# rendered in headless Chromium and the screenshot must show the op colours of the cell
# graphs and the charts (tests/cli/png_colors.py counts them).
#   tests/cli/report.sh path/to/onnas
set -euo pipefail
onnas=${1:?usage: report.sh path/to/onnas}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "report: FAIL: $*" >&2; exit 1; }
data=/usr/share/datasets/fashion-mnist
if [[ ! -e $data/train-images-idx3-ubyte.gz && ! -e $data/train-images-idx3-ubyte ]]; then
  [[ ${CI:-} == true ]] && fail "no Fashion-MNIST in $data (scripts/setup.sh installs dataset-fashion-mnist)"
  echo "report: skipped, no Fashion-MNIST in $data"; exit 0
fi

"$onnas" search -C 4 --cells 2 --reductions 1 --nodes 2 --steps 12 --arch-log-every 4 --threads 2 \
  --out "$work/s" > /dev/null 2> "$work/search.err" || fail "search: $(tail -3 "$work/search.err")"
"$onnas" report "$work/s" --json > "$work/report.json" 2> "$work/report.err" || fail "report: $(cat "$work/report.err")"
html=$work/s/report.html
[[ -s $html ]] || fail "no $html"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["arch_records"] == 3, d' "$work/report.json" ||
  fail "the JSON document: $(cat "$work/report.json")"
# Self-contained: nothing fetched from anywhere, nothing run.
if grep -Eqi '<script|src=|href=|https?://|url\(' "$html"; then fail "the page refers to something outside it"; fi
# Two nodes: 2 + 3 = 5 edges and 2 pair charts per cell type, 2 cell graphs, 2 training charts.
charts=$(grep -o 'class="chart"' "$html" | wc -l)
(( charts == 2 * (5 + 2) + 2 )) || fail "$charts charts, expected 16"
[[ $(grep -o 'class="cell"' "$html" | wc -l) -eq 2 ]] || fail "not two cell graphs"
for op in max_pool_3x3 avg_pool_3x3 skip_connect conv_1x5_5x1 conv_3x3 sep_conv_3x3 dil_conv_3x3; do
  grep -q "$op" "$html" || fail "the page does not name $op"
done

# Broken inputs: one line naming the file.
mkdir "$work/b"
"$onnas" report "$work/b" > /dev/null 2> "$work/b.err" && fail "an empty folder was accepted"
grep -q "genotype.json: cannot be read" "$work/b.err" || fail "empty folder: $(cat "$work/b.err")"
cp "$work/s/genotype.json" "$work/b/"
grep -v '"arch"' "$work/s/search_log.jsonl" > "$work/b/search_log.jsonl"
"$onnas" report "$work/b" > /dev/null 2> "$work/b.err" && fail "a log without arch records was accepted"
grep -q "no arch records" "$work/b.err" || fail "log without arch records: $(cat "$work/b.err")"
head -c 100 "$work/s/search_log.jsonl" > "$work/b/search_log.jsonl"
"$onnas" report "$work/b" > /dev/null 2> "$work/b.err" && fail "a truncated log was accepted"
grep -q "search_log.jsonl line 1" "$work/b.err" || fail "truncated log: $(cat "$work/b.err")"

# Rendered: the screenshot shows the charts' and the graphs' op colours.
chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $chromium ]]; then
  [[ ${CI:-} == true ]] && fail "no chromium (scripts/setup.sh --chromium installs it)"
  echo "report: render check skipped, no chromium"; echo "report: ok"; exit 0
fi
HOME=$work timeout 120 "$chromium" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --screenshot="$work/r.png" --window-size=1000,1400 "file://$html" > "$work/chromium.log" 2>&1 ||
  fail "chromium: $(tail -3 "$work/chromium.log")"
[[ -s $work/r.png ]] || fail "chromium wrote no screenshot"
# The chosen ops' colours (the palette of apps/onnas/cmd_report.cc, in the space's op order).
colors=('#1f77b4' '#ff7f0e' '#2ca02c' '#d62728' '#9467bd' '#8c564b' '#e377c2')
read -r -a stats <<< "$(python3 "$here/png_colors.py" "$work/r.png" "${colors[@]}")"
(( stats[0] == 1000 && stats[1] == 1400 )) || fail "screenshot is ${stats[0]}x${stats[1]}"
(( stats[2] > 1000 * 1400 / 20 )) || fail "only ${stats[2]} non-white pixels: the page did not render"
# Every op is a line in every alpha chart: each colour shows.
for k in "${!colors[@]}"; do
  (( stats[3 + k] > 50 )) || fail "colour ${colors[k]} shows in ${stats[3 + k]} pixels: the charts did not render"
done
echo "report: rendered, ${stats[2]} non-white pixels; op colours ${stats[*]:3}"
echo "report: ok"
