// SGEMM driver: blocking, packing and threading around an ISA-specific micro-kernel.
//
// Dimension key: M, N, K as in sgemm.h; MR x NR the register tile, KC the depth of a
// pass over K, NC the width of a packed block of B (sgemm_internal.h).
//
// Loop nest (GotoBLAS / BLIS blocking, with the two inner loops swapped so the small
// A panel, not the B panel, is the one that stays in L1 while B streams from L2):
//
//   for each pass of KC steps over K          (in order: the only split of the sum)
//     pack all of op(A) for the pass          (MR-row panels, reused by every block)
//     for each block of NC columns            (B block: KC x NC, in L2)
//       pack B block, in parallel over NR panels (or read B in place, see below)
//       parallel over tasks = (chunk of MR-row panels) x (chunk of NR-column panels)
//         for each MR-row panel (MR x KC, in L1)
//           for each NR-column panel: micro-kernel on registers
//
// B is read in place, not packed, when it is not transposed and M is small: each
// element of B is then used by few A panels, so the copy would cost about as much as
// the FMAs it feeds (the search's shapes, M = 16..112, are in this regime). Reading
// in place is safe at the right edge because the kernels mask the last vector.
//
// Determinism: every element of C is one FMA chain over k in ascending order, cut
// only at KC boundaries that depend on K alone, so any tiling and any thread count
// give the same bits.
#include "runtime/kernels/sgemm.h"

#include <algorithm>
#include <cstddef>
#include <new>

#include "runtime/cpu.h"
#include "runtime/error.h"
#include "runtime/kernels/cpu_features.h"
#include "runtime/kernels/sgemm_internal.h"
#include "runtime/threading.h"

#if defined(ONNAS_KERNELS_X86)
#include <xmmintrin.h>  // SSE: x86-64's baseline, no run-time choice needed
#elif defined(ONNAS_KERNELS_NEON)
#include <arm_neon.h>
#endif

namespace onnas::kernels {
namespace {

using sgemm_detail::Blocking;
using sgemm_detail::MicroKernel;

// Below this many flops a second thread costs more to wake than it saves.
constexpr double kParallelMinFlops = 1.0e6;
// Up to this M, a non-transposed B is read in place instead of packed.
constexpr int64_t kInPlaceBMaxM = 128;
// Below this many elements of A per pass, one thread packs A.
constexpr int64_t kParallelMinPack = 64 * 1024;
// Tasks per thread: enough that uneven tasks (edges) still balance.
constexpr int64_t kTasksPerThread = 4;

// The portable micro-kernel (Isa::reference: a portable build, or a CPU without the
// build's fast kernels): plain loops the compiler may vectorize for the baseline ISA.
// 4 x 16 keeps its accumulators within the 16 SSE registers.
constexpr int kGenericMR = sgemm_detail::kGenericBlocking.mr;
constexpr int kGenericNR = sgemm_detail::kGenericBlocking.nr;

template <int R, typename Rows>
void generic_tile_rows(int64_t kc, const float* a, Rows rows_b, float* c, int64_t ldc, int cols, float alpha,
                       float beta) {
  float acc[R][kGenericNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = rows_b.row(k);
    for (int r = 0; r < R; ++r) {
      const float ar = a[r];
      if (cols == kGenericNR) {
        for (int j = 0; j < kGenericNR; ++j) acc[r][j] += ar * b[j];
      } else {
        for (int j = 0; j < cols; ++j) acc[r][j] += ar * b[j];
      }
    }
    a += kGenericMR;
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < cols; ++j) cr[j] = beta == 0.0f ? alpha * acc[r][j] : alpha * acc[r][j] + beta * cr[j];
  }
}

template <typename Rows>
void generic_tile_of(int64_t kc, const float* a, Rows b, float* c, int64_t ldc, int rows, int cols, float alpha,
                     float beta) {
  switch (rows) {
    case 1: return generic_tile_rows<1>(kc, a, b, c, ldc, cols, alpha, beta);
    case 2: return generic_tile_rows<2>(kc, a, b, c, ldc, cols, alpha, beta);
    case 3: return generic_tile_rows<3>(kc, a, b, c, ldc, cols, alpha, beta);
    default: return generic_tile_rows<4>(kc, a, b, c, ldc, cols, alpha, beta);
  }
}

// The micro-kernel of `isa` (one the build has: active_isa() never names another).
const MicroKernel& kernel_for(Isa isa) {
  static const MicroKernel generic = sgemm_detail::make_micro_kernel(
      sgemm_detail::kGenericBlocking,
      [](int64_t kc, const float* a, auto rows_b, float* c, int64_t ldc, int rows, int cols, float alpha, float beta) {
        generic_tile_of(kc, a, rows_b, c, ldc, rows, cols, alpha, beta);
      });
#if defined(ONNAS_KERNELS_X86)
  static const MicroKernel avx512 = sgemm_detail::avx512_kernel();
  static const MicroKernel avx2 = sgemm_detail::avx2_kernel();
  if (isa == Isa::avx512) return avx512;
  if (isa == Isa::avx2) return avx2;
#elif defined(ONNAS_KERNELS_NEON)
  static const MicroKernel neon = sgemm_detail::neon_kernel();
  if (isa == Isa::neon) return neon;
#endif
  return generic;
}

// Per-thread packing buffers for A and B, grown to the largest block seen and then reused,
// so steady-state calls do not allocate. While a thread waits inside parallel_for,
// TBB may run another task on it that calls sgemm again; that nested call finds the
// buffer busy and takes a heap buffer of its own for the duration of the call.
struct Scratch {
  float* data = nullptr;
  size_t floats = 0;
  bool busy = false;
  ~Scratch() { ::operator delete(data, std::align_val_t(64)); }
};

class ScratchLease {
 public:
  ScratchLease(Scratch& s, size_t floats) : scratch_(s) {
    if (s.busy) {
      data_ = static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t(64)));
      owned_ = true;
      return;
    }
    if (s.floats < floats) {
      ::operator delete(s.data, std::align_val_t(64));
      s.data = nullptr;
      s.floats = 0;
      s.data = static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t(64)));
      s.floats = floats;
    }
    s.busy = true;
    data_ = s.data;
  }
  ~ScratchLease() {
    if (owned_)
      ::operator delete(data_, std::align_val_t(64));
    else
      scratch_.busy = false;
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  float* data() const { return data_; }

 private:
  Scratch& scratch_;
  float* data_ = nullptr;
  bool owned_ = false;
};

Scratch& a_scratch() {
  thread_local Scratch s;
  return s;
}

Scratch& b_scratch() {
  thread_local Scratch s;
  return s;
}

// Transposes the 4 x 4 block of rows s0..s3 (4 floats each, anywhere) into 4 rows
// `width` apart at out: out[k * width + l] = s_l[k]; transpose4, the block whose rows
// are ld apart from s0. SSE on x86-64 and NEON on aarch64 (both baseline, no run-time
// choice); a portable build has no block transpose.
#if defined(ONNAS_KERNELS_X86)
constexpr bool kHasTranspose4 = true;
inline void transpose4_rows(const float* s0, const float* s1, const float* s2, const float* s3, float* out,
                            int64_t width) {
  __m128 x0 = _mm_loadu_ps(s0), x1 = _mm_loadu_ps(s1), x2 = _mm_loadu_ps(s2), x3 = _mm_loadu_ps(s3);
  _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
  _mm_storeu_ps(out, x0);
  _mm_storeu_ps(out + width, x1);
  _mm_storeu_ps(out + 2 * width, x2);
  _mm_storeu_ps(out + 3 * width, x3);
}
#elif defined(ONNAS_KERNELS_NEON)
constexpr bool kHasTranspose4 = true;
inline void transpose4_rows(const float* s0, const float* s1, const float* s2, const float* s3, float* out,
                            int64_t width) {
  // Rows a, b, c, d. vtrn pairs lanes: (a0 b0 a2 b2), (a1 b1 a3 b3); then the halves
  // of the two pairs make the columns.
  const float32x4x2_t ab = vtrnq_f32(vld1q_f32(s0), vld1q_f32(s1));
  const float32x4x2_t cd = vtrnq_f32(vld1q_f32(s2), vld1q_f32(s3));
  vst1q_f32(out, vcombine_f32(vget_low_f32(ab.val[0]), vget_low_f32(cd.val[0])));
  vst1q_f32(out + width, vcombine_f32(vget_low_f32(ab.val[1]), vget_low_f32(cd.val[1])));
  vst1q_f32(out + 2 * width, vcombine_f32(vget_high_f32(ab.val[0]), vget_high_f32(cd.val[0])));
  vst1q_f32(out + 3 * width, vcombine_f32(vget_high_f32(ab.val[1]), vget_high_f32(cd.val[1])));
}
#else
constexpr bool kHasTranspose4 = false;
inline void transpose4_rows(const float*, const float*, const float*, const float*, float*, int64_t) {}
#endif
inline void transpose4(const float* s0, int64_t ld, float* out, int64_t width) {
  transpose4_rows(s0, s0 + ld, s0 + 2 * ld, s0 + 3 * ld, out, width);
}

// Copies a panel of `lanes` rows or columns of a matrix over kc steps of K into
// out[k * width + lane]. With k_contiguous, lane l at step k is src[l * ld + k] (the
// panel is transposed, 4 x 4 at a time where the build has a block transpose: done one
// float at a time this copy cost about a tenth of a large SGEMM on x86); otherwise it is
// src[k * ld + l] (a plain row copy). Lanes past `lanes` are not written.
void pack_panel(const float* src, int64_t ld, bool k_contiguous, int lanes, int64_t kc, int width, float* out) {
  if (!k_contiguous) {
    for (int64_t k = 0; k < kc; ++k) std::copy_n(src + k * ld, lanes, out + k * width);
    return;
  }
  int l = 0;
  if constexpr (kHasTranspose4) {
    for (; l + 4 <= lanes; l += 4) {
      const float* s0 = src + l * ld;
      int64_t k = 0;
      for (; k + 4 <= kc; k += 4) transpose4(s0 + k, ld, out + k * width + l, width);
      for (; k < kc; ++k)
        for (int j = 0; j < 4; ++j) out[k * width + l + j] = s0[j * ld + k];
    }
  }
  for (; l < lanes; ++l) {
    const float* s = src + l * ld;
    for (int64_t k = 0; k < kc; ++k) out[k * width + l] = s[k];
  }
}

// Lanes [used, width) of every step of a packed panel (kc steps of `width` floats) set to 0.
void zero_lanes_past(float* panel, int64_t kc, int width, int used) {
  if (used < width)
    for (int64_t k = 0; k < kc; ++k) std::fill(panel + k * width + used, panel + (k + 1) * width, 0.0f);
}

// Rows [i0, i0+rows) x steps [k0, k0+kc) of op(A), mr floats per step. Lanes past
// `rows` are zeroed: a kernel may load whole steps, and stale scratch there could be
// denormals that slow the FMAs down.
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int rows, int64_t k0, int64_t kc, int mr,
            float* out) {
  const float* src = trans_a ? A + k0 * lda + i0 : A + i0 * lda + k0;
  pack_panel(src, lda, !trans_a, rows, kc, mr, out);
  zero_lanes_past(out, kc, mr, rows);
}

// Columns [j0, j0+cols) x steps [k0, k0+kc) of op(B), nr floats per step, zero-padded
// past `cols` so whole vectors can be loaded.
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t j0, int cols, int64_t k0, int64_t kc, int nr,
            float* out) {
  const float* src = trans_b ? B + j0 * ldb + k0 : B + k0 * ldb + j0;
  pack_panel(src, ldb, trans_b, cols, kc, nr, out);
  zero_lanes_past(out, kc, nr, cols);
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    if (beta == 0.0f)
      std::fill(row, row + N, 0.0f);
    else if (beta != 1.0f)
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The depth of K's passes: equal passes of at most kc steps (a function of K alone, which
// keeps results thread-independent).
int64_t pass_depth(const Blocking& mk, int64_t K) { return ceil_div(K, ceil_div(K, mk.kc)); }

// Panels [lo, hi) of op(A) (M rows) for the pass of kb steps at pc, into `out`.
void pack_a_panels(bool trans_a, const float* A, int64_t lda, int64_t M, int mr, int64_t pc, int64_t kb, float* out,
                   int64_t lo, int64_t hi) {
  for (int64_t mp = lo; mp < hi; ++mp)
    pack_a(trans_a, A, lda, mp * mr, int(std::min<int64_t>(mr, M - mp * mr)), pc, kb, mr, out + mp * mr * kb);
}

// Packing sizes of one call under a micro-kernel's blocking.
struct PackSizes {
  size_t a_floats, b_floats;
};
PackSizes pack_sizes(const Blocking& mk, bool trans_b, int64_t M, int64_t N, int64_t K) {
  const int64_t kc_max = pass_depth(mk, K);
  const int64_t n_blocks = ceil_div(N, mk.nc);
  const int64_t nc_max = std::min<int64_t>(N, ceil_div(ceil_div(N, n_blocks), mk.nr) * mk.nr);
  const bool pack_whole_b = trans_b || M > kInPlaceBMaxM;
  return {size_t(ceil_div(M, mk.mr) * mk.mr * kc_max), pack_whole_b ? size_t(ceil_div(nc_max, mk.nr) * mk.nr * kc_max) : 0};
}

size_t round16(size_t n) { return (n + 15) / 16 * 16; }

// Runs `fn` over [begin, end) in parallel chunks, or at once on this thread.
template <typename F>
void maybe_parallel(bool parallel, int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (parallel)
    parallel_for(begin, end, grain, fn);
  else
    fn(begin, end);
}

void sgemm_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const MicroKernel& mk,
                bool parallel, float* a_packed, float* b_packed) {
  const int mr = mk.mr;
  const int nr = mk.nr;

  // Equal passes over K and equal column blocks rounded to whole panels.
  const int64_t kc_max = pass_depth(mk, K);
  const int64_t n_blocks = ceil_div(N, mk.nc);
  const int64_t nc_max = std::min<int64_t>(N, ceil_div(ceil_div(N, n_blocks), nr) * nr);

  const bool pack_whole_b = trans_b || M > kInPlaceBMaxM;
  const int64_t target_tasks = parallel ? kTasksPerThread * num_threads() : 1;
  const int64_t m_panels = ceil_div(M, mr);

  for (int64_t pc = 0; pc < K; pc += kc_max) {
    const int64_t kb = std::min(kc_max, K - pc);
    const float beta_pass = pc == 0 ? beta : 1.0f;

    // All of op(A) for this pass, once: every column block below reuses it.
    maybe_parallel(parallel && M * kb >= kParallelMinPack, 0, m_panels, ceil_div(m_panels, target_tasks),
                   [&](int64_t lo, int64_t hi) { pack_a_panels(trans_a, A, lda, M, mr, pc, kb, a_packed, lo, hi); });

    for (int64_t jc = 0; jc < N; jc += nc_max) {
      const int64_t nb = std::min(nc_max, N - jc);
      const int64_t n_panels = ceil_div(nb, nr);
      // Tasks split rows first (they share nothing), then columns.
      const int64_t m_chunks = std::min(m_panels, target_tasks);
      const int64_t n_chunks = std::min(n_panels, ceil_div(target_tasks, m_chunks));
      const int64_t m_chunk_panels = ceil_div(m_panels, m_chunks);
      const int64_t n_chunk_panels = ceil_div(n_panels, n_chunks);

      const float* b_base;
      int64_t b_panel_stride;  // distance between consecutive NR-column panels
      int64_t b_step;          // distance between consecutive k steps inside a panel
      if (pack_whole_b) {
        maybe_parallel(parallel, 0, n_panels, ceil_div(n_panels, target_tasks), [&](int64_t lo, int64_t hi) {
          for (int64_t p = lo; p < hi; ++p) {
            const int cols = int(std::min<int64_t>(nr, nb - p * nr));
            pack_b(trans_b, B, ldb, jc + p * nr, cols, pc, kb, nr, b_packed + p * kb * nr);
          }
        });
        b_base = b_packed;
        b_panel_stride = kb * nr;
        b_step = nr;
      } else {
        b_base = B + pc * ldb + jc;
        b_panel_stride = nr;
        b_step = ldb;
      }

      maybe_parallel(parallel, 0, m_chunks * n_chunks, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          const int64_t mp_begin = (t / n_chunks) * m_chunk_panels;
          const int64_t mp_end = std::min(m_panels, mp_begin + m_chunk_panels);
          const int64_t np_begin = (t % n_chunks) * n_chunk_panels;
          const int64_t np_end = std::min(n_panels, np_begin + n_chunk_panels);
          for (int64_t mp = mp_begin; mp < mp_end; ++mp) {
            const int64_t i0 = mp * mr;
            const int rows = int(std::min<int64_t>(mr, M - i0));
            const float* a_panel = a_packed + mp * mr * kb;
            for (int64_t np = np_begin; np < np_end; ++np) {
              const int cols = int(std::min<int64_t>(nr, nb - np * nr));
              mk.tile(kb, a_panel, b_base + np * b_panel_stride, b_step, C + i0 * ldc + jc + np * nr, ldc, rows, cols,
                      alpha, beta_pass);
            }
          }
        }
      });
    }
  }
}

// Argument checks and the trivial cases shared by both entry points; true when done.
bool sgemm_trivial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, int64_t lda,
                   int64_t ldb, float beta, float* C, int64_t ldc) {
  ONNAS_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M={} N={} K={}", M, N, K);
  ONNAS_CHECK(ldc >= N && lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N),
              "sgemm: leading dimension too small (lda={} ldb={} ldc={} for M={} N={} K={})", lda, ldb, ldc, M, N, K);
  if (M == 0 || N == 0) return true;
  if (K == 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return true;
  }
  return false;
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (sgemm_trivial(trans_a, trans_b, M, N, K, alpha, lda, ldb, beta, C, ldc)) return;
  const MicroKernel& mk = kernel_for(active_isa());
  const bool parallel = num_threads() > 1 && 2.0 * double(M) * double(N) * double(K) >= kParallelMinFlops;
  const PackSizes sizes = pack_sizes(mk, trans_b, M, N, K);
  ScratchLease a_lease(a_scratch(), sizes.a_floats);
  ScratchLease b_lease(b_scratch(), sizes.b_floats);
  sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mk, parallel, a_lease.data(),
             b_lease.data());
}

void sgemm_packed(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, float* pack) {
  if (sgemm_trivial(trans_a, trans_b, M, N, K, alpha, lda, ldb, beta, C, ldc)) return;
  const MicroKernel& mk = kernel_for(active_isa());
  const bool parallel = num_threads() > 1 && 2.0 * double(M) * double(N) * double(K) >= kParallelMinFlops;
  const PackSizes sizes = pack_sizes(mk, trans_b, M, N, K);
  sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mk, parallel, pack,
             pack + round16(sizes.a_floats));
}

size_t sgemm_pack_floats(bool trans_b, int64_t M, int64_t N, int64_t K) {
  size_t most = 0;
  // Every micro-kernel's, not only this build's: the plan must not depend on the machine.
  for (const Blocking& b : sgemm_detail::kAllBlockings) {
    const PackSizes p = pack_sizes(b, trans_b, M, N, K);
    most = std::max(most, round16(p.a_floats) + round16(p.b_floats));
  }
  return most;
}

void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, float* pack) {
  if (sgemm_trivial(trans_a, trans_b, M, N, K, alpha, lda, ldb, beta, C, ldc)) return;
  const MicroKernel& mk = kernel_for(active_isa());
  const PackSizes sizes = pack_sizes(mk, trans_b, M, N, K);
  sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mk, false, pack,
             pack + round16(sizes.a_floats));
}

void sgemm_indirect(int64_t M, int64_t N, int64_t K, int64_t n_rows, float alpha, const float* A, int64_t lda,
                    const float* const* b_rows, int64_t b_row_step, float beta, float* C, int64_t ldc,
                    int64_t c_row_step, bool parallel, float* pack) {
  ONNAS_CHECK(M >= 0 && N >= 0 && K >= 0 && n_rows >= 0, "sgemm_indirect: negative size M={} N={} K={} rows={}", M,
              N, K, n_rows);
  ONNAS_CHECK(lda >= K, "sgemm_indirect: lda {} < K {}", lda, K);
  if (M == 0 || N == 0 || n_rows == 0) return;
  if (K == 0 || alpha == 0.0f) {
    for (int64_t p = 0; p < n_rows; ++p) scale_c(M, N, beta, C + p * c_row_step, ldc);
    return;
  }
  const MicroKernel& mk = kernel_for(active_isa());
  const int mr = mk.mr, nr = mk.nr;
  const int64_t kc_max = pass_depth(mk, K), m_panels = ceil_div(M, mr), n_panels = ceil_div(N, nr);
  parallel = parallel && num_threads() > 1 && n_rows > 1;
  for (int64_t pc = 0; pc < K; pc += kc_max) {
    const int64_t kb = std::min(kc_max, K - pc);
    const float beta_pass = pc == 0 ? beta : 1.0f;
    pack_a_panels(false, A, lda, M, mr, pc, kb, pack, 0, m_panels);
    maybe_parallel(parallel, 0, n_rows, ceil_div(n_rows, kTasksPerThread * num_threads()), [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p)
        for (int64_t mp = 0; mp < m_panels; ++mp) {
          const int64_t i0 = mp * mr;
          const int rows = int(std::min<int64_t>(mr, M - i0));
          for (int64_t np = 0; np < n_panels; ++np) {
            const int64_t j0 = np * nr;
            const int cols = int(std::min<int64_t>(nr, N - j0));
            mk.tile_indirect(kb, pack + mp * mr * kb, b_rows + pc, p * b_row_step + j0,
                             C + i0 * ldc + p * c_row_step + j0, ldc, rows, cols, alpha, beta_pass);
          }
        }
    });
  }
}

size_t sgemm_indirect_pack_floats(int64_t M, int64_t K) {
  size_t most = 0;
  for (const Blocking& b : sgemm_detail::kAllBlockings)
    most = std::max(most, round16(size_t(ceil_div(M, b.mr) * b.mr * pass_depth(b, K))));
  return most;
}

void sgemm_gathered(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* const* b_cols, int64_t row_len, int64_t b_row_step, float beta, float* C, int64_t ldc,
                    bool parallel, float* pack) {
  ONNAS_CHECK(M >= 0 && N >= 0 && K >= 0 && row_len >= 1, "sgemm_gathered: bad size M={} N={} K={} row {}", M, N,
              K, row_len);
  ONNAS_CHECK(lda >= K && ldc >= N, "sgemm_gathered: leading dimension too small (lda={} ldc={} for M={} N={} K={})",
              lda, ldc, M, N, K);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) return scale_c(M, N, beta, C, ldc);
  const MicroKernel& mk = kernel_for(active_isa());
  const int mr = mk.mr, nr = mk.nr;
  const int64_t kc_max = pass_depth(mk, K), m_panels = ceil_div(M, mr), n_panels = ceil_div(N, nr);
  float* a_packed = pack;
  float* b_packed = pack + round16(size_t(m_panels * mr * kc_max));
  parallel = parallel && num_threads() > 1 && n_panels > 1;
  for (int64_t pc = 0; pc < K; pc += kc_max) {
    const int64_t kb = std::min(kc_max, K - pc);
    const float beta_pass = pc == 0 ? beta : 1.0f;
    pack_a_panels(false, A, lda, M, mr, pc, kb, a_packed, 0, m_panels);
    // B's panel np, then its tiles: lane l at step k is column j0 + l's element pc + k,
    // found a run of row_len floats at a time. Panels are independent (parallel tasks).
    maybe_parallel(parallel, 0, n_panels, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t np = lo; np < hi; ++np) {
        const int64_t j0 = np * nr;
        const int cols = int(std::min<int64_t>(nr, N - j0));
        float* out = b_packed + np * nr * kb;
        // Runs of one output row: steps [k, k + run) read at offset `from` in every column.
        int64_t k = 0, row = pc / row_len, q = pc % row_len;
        while (k < kb) {
          const int64_t run = std::min(row_len - q, kb - k), from = row * b_row_step + q;
          int l = 0;
          if constexpr (kHasTranspose4) {
            for (; l + 4 <= cols; l += 4) {
              const float* const* src = b_cols + j0 + l;
              int64_t i = 0;
              for (; i + 4 <= run; i += 4)
                transpose4_rows(src[0] + from + i, src[1] + from + i, src[2] + from + i, src[3] + from + i,
                                out + (k + i) * nr + l, nr);
              for (; i < run; ++i)
                for (int j = 0; j < 4; ++j) out[(k + i) * nr + l + j] = src[j][from + i];
            }
          }
          for (; l < cols; ++l) {
            const float* src = b_cols[j0 + l] + from;
            for (int64_t i = 0; i < run; ++i) out[(k + i) * nr + l] = src[i];
          }
          k += run, q = 0, ++row;
        }
        zero_lanes_past(out, kb, nr, cols);
        for (int64_t mp = 0; mp < m_panels; ++mp) {
          const int64_t i0 = mp * mr;
          mk.tile(kb, a_packed + mp * mr * kb, out, nr, C + i0 * ldc + j0, ldc, int(std::min<int64_t>(mr, M - i0)),
                  cols, alpha, beta_pass);
        }
      }
    });
  }
}

size_t sgemm_gathered_pack_floats(int64_t M, int64_t N, int64_t K) {
  size_t most = 0;
  for (const Blocking& b : sgemm_detail::kAllBlockings) {
    const int64_t kc = pass_depth(b, K);
    most = std::max(most, round16(size_t(ceil_div(M, b.mr) * b.mr * kc)) + round16(size_t(ceil_div(N, b.nr) * b.nr * kc)));
  }
  return most;
}

}  // namespace onnas::kernels
