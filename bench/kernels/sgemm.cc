// SGEMM benchmarks: our packed SGEMM on big squares and on the search's GEMM shapes
// (bench/shapes.h), side by side with OpenBLAS's cblas_sgemm where it is installed,
// plus two FMA loops that measure the machine's peak so the figures can be read
// against it.
//
// Dimension key: M x N x K as in runtime/kernels/sgemm.h. The "GFLOPS" counter is
// 2*M*N*K per iteration over wall time.
//
// Threads: ONNAS_BENCH_THREADS (default 2) sets both our arena width and OpenBLAS's
// thread count, so the two libraries always run with the same number of threads.
//
//   ONNAS_BENCH_THREADS=2 onnas_bench_kernels --benchmark_filter=sgemm
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench/shapes.h"
#include "runtime/kernels/sgemm.h"
#include "runtime/threading.h"

#ifdef ONNAS_HAVE_OPENBLAS
#include <cblas.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

int bench_threads() {
  const char* s = std::getenv("ONNAS_BENCH_THREADS");
  int n = s ? std::atoi(s) : 2;
  return n >= 1 ? n : 1;
}

struct Operands {
  std::vector<float> A, B, C;
  Operands(int64_t M, int64_t N, int64_t K) : A(size_t(M * K)), B(size_t(K * N)), C(size_t(M * N)) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& x : A) x = u(rng);
    for (float& x : B) x = u(rng);
    for (float& x : C) x = u(rng);
  }
};

void set_gflops(benchmark::State& state, int64_t M, int64_t N, int64_t K) {
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * double(M) * double(N) * double(K) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_onnas(benchmark::State& state, int64_t M, int64_t N, int64_t K) {
  onnas::set_num_threads(bench_threads());
  Operands o(M, N, K);
  for (auto _ : state) {
    onnas::kernels::sgemm(false, false, M, N, K, 1.0f, o.A.data(), K, o.B.data(), N, 0.0f, o.C.data(), N);
    benchmark::DoNotOptimize(o.C.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, M, N, K);
}

#ifdef ONNAS_HAVE_OPENBLAS
void bm_openblas(benchmark::State& state, int64_t M, int64_t N, int64_t K) {
  openblas_set_num_threads(bench_threads());
  Operands o(M, N, K);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(M), int(N), int(K), 1.0f, o.A.data(), int(K),
                o.B.data(), int(N), 0.0f, o.C.data(), int(N));
    benchmark::DoNotOptimize(o.C.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, M, N, K);
}
#endif

void register_shape(const std::string& name, int64_t M, int64_t N, int64_t K) {
  benchmark::RegisterBenchmark(("sgemm/onnas/" + name).c_str(), bm_onnas, M, N, K)->UseRealTime();
#ifdef ONNAS_HAVE_OPENBLAS
  benchmark::RegisterBenchmark(("sgemm/openblas/" + name).c_str(), bm_openblas, M, N, K)->UseRealTime();
#endif
}

#if defined(__x86_64__)
// Peak: independent FMAs on zmm registers, one core. 16 chains are more than
// latency x throughput on any current core, so this is throughput-bound.
__attribute__((target("avx512f,fma"))) void bm_fma_peak_zmm(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("no AVX-512F on this CPU");
    return;
  }
  constexpr int kChains = 16;
  constexpr int64_t kSteps = 4096;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-4f);
  for (auto _ : state) {
    for (int64_t s = 0; s < kSteps; ++s) {
#pragma GCC unroll 16
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    for (int i = 0; i < kChains; ++i) benchmark::DoNotOptimize(acc[i]);
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(double(kSteps * kChains) * 16 * 2 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Clock: one dependent FMA chain runs at one FMA per FMA latency. The counter
// "GHz" assumes the 4-cycle latency of vfmadd on Zen 2/3/4 and Intel since Skylake.
__attribute__((target("avx2,fma"))) void bm_fma_latency_clock(benchmark::State& state) {
  constexpr int64_t kSteps = 1 << 16;
  constexpr double kFmaLatencyCycles = 4.0;
  __m256 acc = _mm256_set1_ps(1.0f);
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
  for (auto _ : state) {
    for (int64_t s = 0; s < kSteps; ++s) acc = _mm256_fmadd_ps(acc, x, y);
    benchmark::DoNotOptimize(acc);
  }
  state.counters["GHz"] =
      benchmark::Counter(double(kSteps) * kFmaLatencyCycles * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
#endif

const bool registered = [] {
  for (int64_t n : {256, 512, 1024}) register_shape("square_" + std::to_string(n), n, n, n);
  for (const auto& c : onnas::bench::search_gemm_cases()) register_shape(c.name, c.M, c.N, c.K);
#if defined(__x86_64__)
  benchmark::RegisterBenchmark("sgemm/machine/fma_peak_zmm_1core", bm_fma_peak_zmm);
  benchmark::RegisterBenchmark("sgemm/machine/fma_latency_clock", bm_fma_latency_clock);
#endif
  return true;
}();

}  // namespace
