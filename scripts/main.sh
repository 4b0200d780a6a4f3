#!/usr/bin/env bash
# The main job: installs what is missing, builds the tool, searches an architecture on
# Fashion-MNIST (Debian's dataset-fashion-mnist), trains the genotype it found briefly
# and prints the test accuracy. Outputs go to runs/ (genotype, weights, logs).
#   scripts/main.sh                  the default (search ~10 minutes on 2 cores, then 1 epoch of training)
#   SEARCH_ARGS="--epochs 2" TRAIN_ARGS="--epochs 20" scripts/main.sh    longer runs
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
ONNAS_TARGETS=onnas "$root/scripts/build.sh"
onnas=$root/build/apps/onnas
cd "$root"
# shellcheck disable=SC2086
"$onnas" search --out runs/search --steps ${SEARCH_STEPS:-150} ${SEARCH_ARGS:-}
# shellcheck disable=SC2086
"$onnas" train --genotype runs/search/genotype.json --out runs/train --epochs 1 ${TRAIN_ARGS:-}
