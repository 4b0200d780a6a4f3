# Cross-compiles onnas for 64-bit ARM Linux (Jetson Nano, Raspberry Pi 4, any ARMv8-A
# board) on Debian 12, with Debian's cross compiler and the :arm64 libraries installed
# beside the host's (multiarch: scripts/setup.sh --aarch64). Binaries run on the build
# machine under QEMU user-mode emulation, which CTest (and catch_discover_tests) use.
#
#   cmake -S . -B build-aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   scripts/test.sh --arch aarch64      (the same, then the tests under qemu)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Find packages' config files and libraries under /usr/lib/aarch64-linux-gnu (and the
# architecture-independent /usr/share, /usr/lib/cmake), never the host's x86_64 ones.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# The board the paper targets is a Cortex-A57 (ARMv8.0-A): the compiler's default
# -march=armv8-a already builds for it, and the emulator runs that CPU, so an
# instruction newer than the board's would fail the tests instead of passing unseen.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -cpu cortex-a57)
