// Depthwise convolution (C == K == groups), direct loops: each (n, c) plane is
// independent, so forward and backward data are parallel over the N*C planes, and the
// weight gradient is parallel over channels (each channel sums its batch in order, so
// the result does not depend on the thread count).
//
// Dimension key: N batch, C channels, H W input, P Q output, R S kernel; stride, pad,
// dilation per axis (any odd or even kernel, any stride and dilation).
//
// The loops live in conv2d_depthwise_impl.h and are compiled here for the baseline of
// the target (x86-64, aarch64, any CPU) and in the _avx2 / _avx512 (x86-64) or _neon
// (aarch64) files for those ISAs; onnas::active_isa() picks one.
#define ONNAS_DW_ISA baseline
#include "runtime/kernels/conv2d_depthwise_impl.h"

#include "runtime/cpu.h"
#include "runtime/kernels/conv2d.h"
#include "runtime/kernels/cpu_features.h"
#include "runtime/threading.h"

namespace onnas::kernels::depthwise {
namespace {

Args args_of(const Conv2dShape& s) {
  return Args{s.C, s.H, s.W, s.P(), s.Q(), s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h, s.dil_w};
}

// Planes per parallel chunk: enough output to amortize scheduling (about 8K floats).
int64_t plane_grain(const Args& a) {
  const int64_t per_plane = a.P * a.Q > a.H * a.W ? a.P * a.Q : a.H * a.W;
  const int64_t g = 8192 / (per_plane > 0 ? per_plane : 1);
  return g > 0 ? g : 1;
}

// The three entry points of one compilation of the loops.
struct Loops {
  decltype(&baseline::forward) forward;
  decltype(&baseline::backward_data) backward_data;
  decltype(&baseline::backward_weight) backward_weight;
};

#define ONNAS_DW_LOOPS(isa) Loops{&isa::forward, &isa::backward_data, &isa::backward_weight}

// The loops of `isa` (one the build has: active_isa() never names another).
Loops loops_for(Isa isa) {
#if defined(ONNAS_KERNELS_X86)
  if (isa == Isa::avx512) return ONNAS_DW_LOOPS(avx512);
  if (isa == Isa::avx2) return ONNAS_DW_LOOPS(avx2);
#elif defined(ONNAS_KERNELS_NEON)
  if (isa == Isa::neon) return ONNAS_DW_LOOPS(neon);
#endif
  return ONNAS_DW_LOOPS(baseline);
}

#undef ONNAS_DW_LOOPS

}  // namespace

void run_forward(const Conv2dShape& s, const float* x, const float* w, float* y) {
  const Args a = args_of(s);
  const Loops loops = loops_for(active_isa());
  parallel_for(0, s.N * s.C, plane_grain(a), [&](int64_t lo, int64_t hi) { loops.forward(a, x, w, y, lo, hi); });
}

void run_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const Args a = args_of(s);
  const Loops loops = loops_for(active_isa());
  parallel_for(0, s.N * s.C, plane_grain(a),
               [&](int64_t lo, int64_t hi) { loops.backward_data(a, dy, w, dx, lo, hi); });
}

void run_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw) {
  const Args a = args_of(s);
  const Loops loops = loops_for(active_isa());
  parallel_for(0, s.C, 1, [&](int64_t lo, int64_t hi) { loops.backward_weight(a, s.N, x, dy, dw, lo, hi); });
}

}  // namespace onnas::kernels::depthwise
