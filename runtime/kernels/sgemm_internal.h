// Private to the SGEMM kernels: the contract between the driver (sgemm.cc) and the
// ISA-specific micro-kernels (sgemm_avx2.cc, sgemm_avx512.cc, sgemm_neon.cc).
//
// Dimension key: MR x NR is the register tile of C a micro-kernel computes, KC the
// depth of one pass over K, NC the width of one packed block of B.
//
// A micro-kernel computes one tile of C (rows <= MR, cols <= NR) over kc steps:
//   acc[r][j] = sum_k a[k*MR + r] * b[k*ldb_k + j]   (k ascending, one FMA chain per element)
//   C[r][j]   = alpha * acc[r][j] + beta * C[r][j]    (C is not read when beta == 0)
// `a` is a packed A panel (k-major, MR floats per step). `b` is either a packed B
// panel (ldb_k == NR, zero-padded) or B itself (ldb_k == ldb), which is why the last
// vector of columns is read with a mask: past `cols` the memory may not exist.
//
// Every element of C is the same FMA chain whichever tile, panel or thread computes
// it, so the result depends on KC alone, never on the tiling or the thread count.
//
// The blockings of all micro-kernels are listed here, whichever ones this build
// compiles: planned packing memory (sgemm_pack_floats) is the largest over all of them,
// so a plan made on one machine holds on every other (x86 or ARM, any ISA).
#pragma once

#include <cstdint>

namespace onnas::kernels::sgemm_detail {

struct Blocking {
  int mr;  // rows of the register tile; packed A panels hold mr floats per k step
  int nr;  // columns of the register tile; packed B panels hold nr floats per k step
  int kc;  // K is cut into passes of at most kc steps (A panel of mr*kc floats stays in L1)
  int nc;  // B is packed nc columns at a time (kc*nc floats stay in L2), a multiple of nr
};

inline constexpr Blocking kAvx512Blocking{8, 48, 256, 12 * 48};  // 576 KiB B block, 1 MiB L2
inline constexpr Blocking kAvx2Blocking{6, 16, 256, 32 * 16};    // 512 KiB B block, 1 MiB L2
inline constexpr Blocking kNeonBlocking{8, 12, 256, 32 * 12};    // 384 KiB B block: a quarter of a
                                                                 // Cortex-A57's shared 2 MiB L2
inline constexpr Blocking kGenericBlocking{4, 16, 256, 32 * 16};
inline constexpr Blocking kAllBlockings[] = {kGenericBlocking, kAvx2Blocking, kAvx512Blocking, kNeonBlocking};

using TileFn = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb_k, float* c, int64_t ldc, int rows,
                        int cols, float alpha, float beta);
// The same tile with B's row k at b_rows[k] + b_offset (an indirection table: the rows
// of a convolution's columns, read where they lie in the input, sgemm_indirect).
using IndirectTileFn = void (*)(int64_t kc, const float* a, const float* const* b_rows, int64_t b_offset, float* c,
                                int64_t ldc, int rows, int cols, float alpha, float beta);

struct MicroKernel : Blocking {
  TileFn tile;
  IndirectTileFn tile_indirect;
};

// Where a micro-kernel finds B's row k: the two sources its templates are written over.
// Internal linkage (an unnamed namespace), so the copies compiled with each ISA's flags
// never meet at link time.
namespace {
struct StridedRows {  // b + k * ld: a matrix, or a packed panel (ld == NR)
  const float* b;
  int64_t ld;
  const float* row(int64_t k) const { return b + k * ld; }
};
struct IndirectRows {  // rows[k] + offset
  const float* const* rows;
  int64_t offset;
  const float* row(int64_t k) const { return rows[k] + offset; }
};

// A micro-kernel from a file's tile template: `tile_of` is a stateless generic lambda
// (kc, a, rows_b, c, ldc, rows, cols, alpha, beta) over a row source, which gives both
// entry points.
template <typename TileOf>
MicroKernel make_micro_kernel(const Blocking& blocking, TileOf) {
  return {blocking,
          [](int64_t kc, const float* a, const float* b, int64_t ldb_k, float* c, int64_t ldc, int rows, int cols,
             float alpha, float beta) {
            TileOf{}(kc, a, StridedRows{b, ldb_k}, c, ldc, rows, cols, alpha, beta);
          },
          [](int64_t kc, const float* a, const float* const* b_rows, int64_t b_offset, float* c, int64_t ldc, int rows,
             int cols, float alpha, float beta) {
            TileOf{}(kc, a, IndirectRows{b_rows, b_offset}, c, ldc, rows, cols, alpha, beta);
          }};
}
}  // namespace

// Defined only in builds that compile them (runtime/kernels/cpu_features.h).
MicroKernel avx512_kernel();  // sgemm_avx512.cc, needs AVX-512F
MicroKernel avx2_kernel();    // sgemm_avx2.cc, needs AVX2 + FMA
MicroKernel neon_kernel();    // sgemm_neon.cc, aarch64

}  // namespace onnas::kernels::sgemm_detail
