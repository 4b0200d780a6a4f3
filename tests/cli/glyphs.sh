#!/usr/bin/env bash
# The glyph benchmark end to end: make_glyphs renders a small one (three alphabets, two
# background, one evaluation), the same seed gives the same bytes, and onnas meta-train /
# eval-fewshot run on it with --data-format glyphs and --rotations (20-way tasks need the
# rotated classes here), printing a Student-t interval. A benchmark that is not there is
# refused with one line saying how to make it. Tiny configuration, seconds.
#   tests/cli/glyphs.sh path/to/onnas path/to/make_glyphs
set -euo pipefail
onnas=${1:?usage: glyphs.sh path/to/onnas path/to/make_glyphs}
make_glyphs=${2:?usage: glyphs.sh path/to/onnas path/to/make_glyphs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "glyphs: FAIL: $*" >&2; exit 1; }
small=(--alphabets Greek,Armenian,Gurmukhi --instances 6 --max-characters 6 --threads 2)

"$make_glyphs" "${small[@]}" --out "$work/g" > "$work/make.out" || fail "make_glyphs failed"
"$make_glyphs" "${small[@]}" --out "$work/g2" > /dev/null || fail "make_glyphs failed the second time"
diff -r "$work/g" "$work/g2" > /dev/null || fail "the same seed gave other bytes"
grep -q "background: 2 alphabets, 12 characters; evaluation: 1 alphabets, 6 characters" "$work/make.out" ||
  fail "unexpected counts: $(cat "$work/make.out")"
[[ $(find "$work/g/images_evaluation/Gurmukhi" -name '*.png' | wc -l) -eq 36 ]] || fail "Gurmukhi should have 6 x 6 images"

tiny=(-C 4 --cells 2 --reductions 1 --nodes 2 --threads 2 --data-format glyphs --data "$work/g" --rotations)
"$onnas" meta-train "${tiny[@]}" --way 20 --meta-batch 1 --inner-steps 1 --query 2 --meta-epochs 1 --steps-per-epoch 1 \
  --val-every 0 --out "$work/m" > /dev/null 2> "$work/train.err" || fail "meta-train: $(tail -3 "$work/train.err")"
grep -q "meta-train: 48 classes, 288 images" "$work/train.err" || fail "meta-train's classes: $(head -3 "$work/train.err")"
# One meta-epoch under the default warm-up of two: alpha and beta are never trained, and the run says so.
grep -q "warning: the warm-up (2 meta-epochs) covers the whole run" "$work/train.err" || fail "no warm-up warning"
"$onnas" eval-fewshot "${tiny[@]}" --way 20 --meta-cell "$work/m/meta_cell.safetensors" --tasks 2 --query 2 \
  --search-steps 1 --finetune-steps 1 > "$work/eval.out" 2> "$work/eval.err" || fail "eval-fewshot: $(tail -3 "$work/eval.err")"
grep -q "20-way 1-shot over 2 meta-test tasks: accuracy .* (95% Student-t interval)" "$work/eval.out" ||
  fail "eval-fewshot printed: $(cat "$work/eval.out")"

if "$onnas" eval-fewshot --data-format glyphs --data "$work/none" --random-init > /dev/null 2> "$work/none.err"; then
  fail "a missing benchmark was accepted"
fi
[[ $(wc -l < "$work/none.err") -eq 1 ]] && grep -q "scripts/setup.sh --glyphs" "$work/none.err" ||
  fail "a missing benchmark: expected one line saying how to make it, got: $(cat "$work/none.err")"
echo "glyphs: ok"
