#!/usr/bin/env bash
# Installs what the build needs and is missing (Debian 12, as root or with sudo).
# Runs `apt-get update` once, and only when something is missing.
#   scripts/setup.sh            build + test dependencies and the Fashion-MNIST data
#   scripts/setup.sh --bench    also OpenBLAS (bench-only side-by-side figures)
#   scripts/setup.sh --fuzz     also clang 14 and its libFuzzer / sanitizer runtimes (scripts/fuzz.sh)
#   scripts/setup.sh --mpi      also Open MPI (the -DONNAS_MPI=ON build: mpirun -n P onnas meta-train)
#   scripts/setup.sh --aarch64  also the aarch64 cross build (cmake/aarch64-linux-gnu.cmake): the arm64
#                               architecture in dpkg, the cross g++, the :arm64 libraries, and
#                               qemu-user-static to run what it builds (scripts/test.sh --arch aarch64)
# Flags combine: scripts/setup.sh --aarch64 --bench.
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config libtbb-dev libfmt-dev libbenchmark-dev catch2 libcli11-dev
          nlohmann-json3-dev zlib1g-dev libstb-dev dataset-fashion-mnist)
add_arm64=0
for flag in "$@"; do
  case "$flag" in
    --bench) packages+=(libopenblas-dev) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    --aarch64)
      # The compiled libraries in their arm64 build. Catch2 (header-only here, one
      # package for every architecture), nlohmann-json and CLI11 (headers) are the
      # host's packages above.
      packages+=(g++-aarch64-linux-gnu qemu-user-static libtbb-dev:arm64 libfmt-dev:arm64
                 libbenchmark-dev:arm64 zlib1g-dev:arm64 libstb-dev:arm64)
      dpkg --print-foreign-architectures | grep -qx arm64 || add_arm64=1
      ;;
    *) echo "setup: unknown flag $flag (--bench, --fuzz, --mpi, --aarch64)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  # A new architecture needs its package lists, which the one update below fetches.
  (( add_arm64 )) && "${sudo_cmd[@]}" dpkg --add-architecture arm64
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
