#!/usr/bin/env bash
# Installs what the build needs and is missing (Debian 12, as root or with sudo).
# Runs `apt-get update` once, and only when something is missing.
#   scripts/setup.sh            build + test dependencies, the Fashion-MNIST data, the
#                               Noto fonts (the glyph benchmark's tests render a few glyphs),
#                               python3-onnx and node/npm (the ONNX export test)
#   scripts/setup.sh --chromium also Chromium (headless: the test that renders `onnas report`'s page;
#                               scripts/test.sh asks for it)
#   scripts/setup.sh --bench    also OpenBLAS (bench-only side-by-side figures)
#   scripts/setup.sh --fuzz     also clang 14 and its libFuzzer / sanitizer runtimes (scripts/fuzz.sh)
#   scripts/setup.sh --mpi      also Open MPI (the -DONNAS_MPI=ON build: mpirun -n P onnas meta-train)
#   scripts/setup.sh --aarch64  also the aarch64 cross build (cmake/aarch64-linux-gnu.cmake): the arm64
#                               architecture in dpkg, the cross g++, the :arm64 libraries, and
#                               qemu-user-static to run what it builds (scripts/test.sh --arch aarch64)
#   scripts/setup.sh --glyphs   also builds tools/make_glyphs and renders the glyph benchmark (an
#                               Omniglot-like few-shot set of rendered glyphs, README "The glyph
#                               benchmark") into $ONNAS_GLYPHS_DIR (default /var/cache/onnas/glyphs),
#                               once: skipped when a benchmark of the current generator is there
# Flags combine: scripts/setup.sh --aarch64 --bench.
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config libtbb-dev libfmt-dev libbenchmark-dev catch2 libcli11-dev
          nlohmann-json3-dev zlib1g-dev libstb-dev dataset-fashion-mnist fonts-noto-core time python3 python3-onnx)
# The export test runs the ONNX model in ONNX Runtime from npm (onnxruntime-node): node and
# npm, unless some are on the PATH already (e.g. NodeSource's nodejs, which carries npm).
command -v npm > /dev/null || packages+=(nodejs npm)
add_arm64=0
glyphs=0
for flag in "$@"; do
  case "$flag" in
    --bench) packages+=(libopenblas-dev) ;;
    --chromium) packages+=(chromium) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    --glyphs) glyphs=1 ;;
    --aarch64)
      # The compiled libraries in their arm64 build. Catch2 (header-only here, one
      # package for every architecture), nlohmann-json and CLI11 (headers) are the
      # host's packages above.
      packages+=(g++-aarch64-linux-gnu qemu-user-static libtbb-dev:arm64 libfmt-dev:arm64
                 libbenchmark-dev:arm64 zlib1g-dev:arm64 libstb-dev:arm64)
      dpkg --print-foreign-architectures | grep -qx arm64 || add_arm64=1
      ;;
    *) echo "setup: unknown flag $flag (--chromium, --bench, --fuzz, --mpi, --aarch64, --glyphs)" >&2; exit 2 ;;
  esac
done
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing ${missing[*]}" >&2
  # A new architecture needs its package lists, which the one update below fetches.
  (( add_arm64 )) && "${sudo_cmd[@]}" dpkg --add-architecture arm64
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if (( glyphs )); then
  root=$(cd "$(dirname "$0")/.." && pwd)
  out=${ONNAS_GLYPHS_DIR:-/var/cache/onnas/glyphs}
  version=$(sed -nE 's/.*kGlyphGeneratorVersion = ([0-9]+);.*/\1/p' "$root/data/glyphs.h")
  if [[ -f "$out/glyphs.json" ]] && grep -q "\"generator_version\": $version," "$out/glyphs.json"; then
    echo "setup: the glyph benchmark is already in $out" >&2
    exit 0
  fi
  ONNAS_TARGETS=make_glyphs "$root/scripts/build.sh"
  "${sudo_cmd[@]}" mkdir -p "$(dirname "$out")"
  [[ -e "$out" ]] && { echo "setup: replacing $out (made by another generator version)" >&2; "${sudo_cmd[@]}" rm -rf "$out"; }
  "${sudo_cmd[@]}" "${ONNAS_BUILD_DIR:-$root/build}/apps/make_glyphs" --out "$out"
fi
