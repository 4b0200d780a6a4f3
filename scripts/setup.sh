#!/usr/bin/env bash
# Installs what the build needs and is missing (Debian 12, as root or with sudo).
# Runs `apt-get update` once, and only when something is missing.
#   scripts/setup.sh            build + test dependencies and the Fashion-MNIST data
#   scripts/setup.sh --bench    also OpenBLAS (bench-only side-by-side figures)
#   scripts/setup.sh --fuzz     also clang 14 and its libFuzzer / sanitizer runtimes (scripts/fuzz.sh)
#   scripts/setup.sh --mpi      also Open MPI (the -DONNAS_MPI=ON build: mpirun -n P onnas meta-train)
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config libtbb-dev libfmt-dev libbenchmark-dev catch2 libcli11-dev
          nlohmann-json3-dev zlib1g-dev libstb-dev dataset-fashion-mnist)
[[ "${1:-}" == "--bench" ]] && packages+=(libopenblas-dev)
[[ "${1:-}" == "--fuzz" ]] && packages+=(clang libclang-rt-14-dev)
[[ "${1:-}" == "--mpi" ]] && packages+=(libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
