// Batch norm and pooling on the search's feature maps (batch 32: 16 channels at 28x28,
// 32 at 14x14, 64 at 7x7), beside a copy of the same bytes (the memory roof):
//   norm/<map>/{fwd_train,bwd_output}   the cells' non-affine batch norm, in place
//   pool/<map>/{max_fwd,max_bwd,avg_fwd,avg_bwd}   3x3, stride 1, pad 1 (normal cells)
//   copy/<map>                          memcpy of one map
// Counter GBps: bytes read and written once per iteration over wall time.
// Threads: ONNAS_BENCH_THREADS (default 2), as in the other kernel suites.
//
//   ONNAS_BENCH_THREADS=2 onnas_bench_kernels --benchmark_filter='^(norm|pool|copy)/'
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/kernels/batch_norm.h"
#include "runtime/kernels/pool.h"
#include "runtime/tensor.h"
#include "runtime/threading.h"

namespace {

using onnas::kernels::BatchNormShape;
using onnas::kernels::Pool2dShape;

int bench_threads() {
  const char* s = std::getenv("ONNAS_BENCH_THREADS");
  const int n = s ? std::atoi(s) : 2;
  return n >= 1 ? n : 1;
}

struct Map {
  const char* name;
  int64_t C, HW, side;
};
constexpr int64_t kBatch = 32;
const Map kMaps[] = {{"16x28x28", 16, 784, 28}, {"32x14x14", 32, 196, 14}, {"64x7x7", 64, 49, 7}};

// One map's worth of tensors in 64-byte aligned buffers, with values of both signs.
struct Tensors {
  size_t n;
  onnas::Buffer x, y, dy, stats;
  explicit Tensors(const Map& m)
      : n(size_t(kBatch * m.C * m.HW)), x(n * 4), y(n * 4), dy(n * 4), stats(size_t(4 * m.C) * 4) {
    for (size_t i = 0; i < n; ++i) {
      f(x)[i] = float(int(i % 97) - 48) * 0.013f;
      f(dy)[i] = float(int(i % 89) - 44) * 0.011f;
    }
  }
  static float* f(onnas::Buffer& b) { return static_cast<float*>(b.data()); }
};

void set_rate(benchmark::State& state, double bytes) {
  state.counters["GBps"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_norm(benchmark::State& state, Map m, bool backward) {
  onnas::set_num_threads(bench_threads());
  Tensors t(m);
  const BatchNormShape s{.N = kBatch, .C = m.C, .HW = m.HW};
  float* mean = Tensors::f(t.stats);
  float* rstd = mean + m.C;
  onnas::kernels::batch_norm_forward_train(s, Tensors::f(t.x), nullptr, nullptr, Tensors::f(t.y), mean, rstd,
                                           nullptr, nullptr);
  for (auto _ : state) {
    if (backward)
      onnas::kernels::batch_norm_backward_from_output(s, Tensors::f(t.y), Tensors::f(t.dy), rstd, Tensors::f(t.x));
    else
      onnas::kernels::batch_norm_forward_train(s, Tensors::f(t.y), nullptr, nullptr, Tensors::f(t.y), mean, rstd,
                                               nullptr, nullptr);
    benchmark::ClobberMemory();
  }
  set_rate(state, double(t.n) * 4 * (backward ? 3 : 2));
}

enum class Pool { max_fwd, max_bwd, avg_fwd, avg_bwd };

void bm_pool(benchmark::State& state, Map m, Pool which) {
  onnas::set_num_threads(bench_threads());
  Tensors t(m);
  const Pool2dShape s{.N = kBatch, .C = m.C, .H = m.side, .W = m.side};
  std::vector<uint8_t> argmax(t.n);
  onnas::kernels::max_pool2d_forward(s, Tensors::f(t.x), Tensors::f(t.y), argmax.data());
  for (auto _ : state) {
    switch (which) {
      case Pool::max_fwd: onnas::kernels::max_pool2d_forward(s, Tensors::f(t.x), Tensors::f(t.y), argmax.data()); break;
      case Pool::max_bwd: onnas::kernels::max_pool2d_backward(s, Tensors::f(t.dy), argmax.data(), Tensors::f(t.y)); break;
      case Pool::avg_fwd: onnas::kernels::avg_pool2d_forward(s, Tensors::f(t.x), Tensors::f(t.y)); break;
      case Pool::avg_bwd: onnas::kernels::avg_pool2d_backward(s, Tensors::f(t.dy), Tensors::f(t.y)); break;
    }
    benchmark::ClobberMemory();
  }
  set_rate(state, double(t.n) * 4 * 2);
}

void bm_copy(benchmark::State& state, Map m) {
  Tensors t(m);
  for (auto _ : state) {
    std::memcpy(t.y.data(), t.x.data(), t.n * 4);
    benchmark::ClobberMemory();
  }
  set_rate(state, double(t.n) * 4 * 2);
}

const bool registered = [] {
  for (const Map& m : kMaps) {
    const std::string map = m.name;
    benchmark::RegisterBenchmark(("norm/" + map + "/fwd_train").c_str(), bm_norm, m, false)
        ->Unit(benchmark::kMicrosecond)->UseRealTime();
    benchmark::RegisterBenchmark(("norm/" + map + "/bwd_output").c_str(), bm_norm, m, true)
        ->Unit(benchmark::kMicrosecond)->UseRealTime();
    const std::pair<Pool, const char*> pools[] = {
        {Pool::max_fwd, "max_fwd"}, {Pool::max_bwd, "max_bwd"}, {Pool::avg_fwd, "avg_fwd"}, {Pool::avg_bwd, "avg_bwd"}};
    for (const auto& [which, name] : pools)
      benchmark::RegisterBenchmark(("pool/" + map + "/" + name).c_str(), bm_pool, m, which)
          ->Unit(benchmark::kMicrosecond)->UseRealTime();
    benchmark::RegisterBenchmark(("copy/" + map).c_str(), bm_copy, m)->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
  return true;
}();

}  // namespace
