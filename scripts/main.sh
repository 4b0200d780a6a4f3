#!/usr/bin/env bash
# The main job: installs what is missing, builds the tool, searches an architecture on
# Fashion-MNIST (Debian's dataset-fashion-mnist), trains the genotype it found briefly
# and prints the test accuracy. Outputs go to runs/ (genotype, weights, logs).
#   scripts/main.sh                  the default (search ~10 minutes on 2 cores, then 1 epoch of training)
#   SEARCH_STEPS=300 TRAIN_EPOCHS=20 scripts/main.sh    longer runs
#   SEARCH_ARGS="--temperature 1 --arch-lr 3e-4" TRAIN_EPOCHS=20 scripts/main.sh   the README's 93.94% (search defaults before 2026-12-03)
#   SEARCH_ARGS="--mode ops+pairs+sbs --split 4" TRAIN_ARGS="--batch 128" scripts/main.sh    other options
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
ONNAS_TARGETS=onnas "$root/scripts/build.sh"
onnas=$root/build/apps/onnas
cd "$root"
# shellcheck disable=SC2086
"$onnas" search --out runs/search --overwrite --steps ${SEARCH_STEPS:-150} ${SEARCH_ARGS:-}
# shellcheck disable=SC2086
"$onnas" train --genotype runs/search/genotype.json --out runs/train --overwrite --epochs ${TRAIN_EPOCHS:-1} ${TRAIN_ARGS:-}
