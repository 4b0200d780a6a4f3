// Convolution benchmarks on the shapes the search really produces (bench/shapes.h):
// forward, backward data and backward weight for every search_conv_cases() entry —
// depthwise 3x3 (stride 1/2, dilation 1/2), pointwise 1x1, the 1x5 / 5x1 pair and the
// stem — named conv/<case>/<pass>.
//
// Counters, to read against the compute roof and the memory roof:
//   GFLOPS  2*N*K*P*Q*(C/groups)*R*S per iteration over wall time;
//   GBps    bytes moved per iteration over wall time: input + weight + output, each
//           read or written once (dx, dy, dw stand in for x, y, w in the backward passes).
//
// Threads: ONNAS_BENCH_THREADS (default 2), as in the SGEMM suite. ISA: the detected
// one, or ONNAS_ISA=avx2|avx512|reference.
//
//   ONNAS_BENCH_THREADS=2 onnas_bench_kernels --benchmark_filter=conv/dw_3x3
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "bench/shapes.h"
#include "runtime/kernels/conv2d.h"
#include "runtime/tensor.h"
#include "runtime/threading.h"

namespace {

using onnas::kernels::Conv2dShape;

int bench_threads() {
  const char* s = std::getenv("ONNAS_BENCH_THREADS");
  const int n = s ? std::atoi(s) : 2;
  return n >= 1 ? n : 1;
}

Conv2dShape shape_of(const onnas::bench::ConvCase& c) {
  return Conv2dShape{.N = c.N, .C = c.C, .H = c.H, .W = c.W, .K = c.K, .R = c.R, .S = c.S, .stride_h = c.stride,
                     .stride_w = c.stride, .pad_h = c.pad_h, .pad_w = c.pad_w, .dil_h = c.dil, .dil_w = c.dil,
                     .groups = c.groups};
}

enum class Pass { forward, backward_data, backward_weight };

// Tensors in 64-byte aligned buffers, as the arena gives them.
struct Operands {
  onnas::Buffer x, w, y, ws;
  explicit Operands(const Conv2dShape& s)
      : x(size_t(s.N * s.C * s.H * s.W) * 4),
        w(size_t(s.weight_numel()) * 4),
        y(size_t(s.N * s.K * s.P() * s.Q()) * 4),
        ws(std::max({onnas::kernels::conv2d_workspace_bytes(s, onnas::kernels::ConvPass::forward),
                     onnas::kernels::conv2d_workspace_bytes(s, onnas::kernels::ConvPass::backward_data),
                     onnas::kernels::conv2d_workspace_bytes(s, onnas::kernels::ConvPass::backward_weight)}) +
           64) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (onnas::Buffer* b : {&x, &w, &y}) {
      float* p = static_cast<float*>(b->data());
      for (size_t i = 0; i < b->bytes() / 4; ++i) p[i] = u(rng);
    }
  }
  float* f(onnas::Buffer& b) { return static_cast<float*>(b.data()); }
};

void bm_conv(benchmark::State& state, Conv2dShape s, Pass pass) {
  onnas::set_num_threads(bench_threads());
  Operands o(s);
  for (auto _ : state) {
    switch (pass) {
      case Pass::forward:
        onnas::kernels::conv2d_forward(s, o.f(o.x), o.f(o.w), o.f(o.y), o.ws.data());
        break;
      case Pass::backward_data:
        onnas::kernels::conv2d_backward_data(s, o.f(o.y), o.f(o.w), o.f(o.x), o.ws.data());
        break;
      case Pass::backward_weight:
        onnas::kernels::conv2d_backward_weight(s, o.f(o.x), o.f(o.y), o.f(o.w), o.ws.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  const double bytes = double(o.x.bytes() + o.w.bytes() + o.y.bytes());
  state.counters["GFLOPS"] = benchmark::Counter(s.flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GBps"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

const bool registered = [] {
  const std::pair<Pass, const char*> passes[] = {
      {Pass::forward, "fwd"}, {Pass::backward_data, "bwd_data"}, {Pass::backward_weight, "bwd_weight"}};
  for (const auto& c : onnas::bench::search_conv_cases())
    for (const auto& [pass, name] : passes)
      benchmark::RegisterBenchmark((std::string("conv/") + c.name + "/" + name).c_str(), bm_conv, shape_of(c), pass)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
  return true;
}();

}  // namespace
