// Search-step benchmark: one first-order DARTS step (architecture pass on a validation
// batch + weight pass on a training batch + both optimizer steps) in every memory
// mode of On-NAS, on synthetic images (random normal pixels, random labels), for two
// configurations:
//   fmnist    the default Fashion-MNIST search: 28x28x1, 10 classes, C=16, batch 32
//   omniglot  the paper's Omniglot-like setting: 28x28x1, 5 classes, C=28, batch 25
// (both: 4 cells, reductions at 1 and 3, 3 nodes, 7 ops, k_grad 2).
//
// Cases: search_step/<config>/<mode>, mode one of full, ops, ops+pairs,
// sbs-recompute, sbs-checkpoint (split 1) and sbs-recompute-split5 /
// full-split5 (5 micro-batches; omniglot only, whose batch 25 divides by 5), and
// sbs-recompute-split5-sgd: the same with plain SGD for the weights (no optimizer
// state) instead of Adam, and sbs-recompute-split5-adam-bf16: with Adam whose second
// moment is kept in bf16 (half the state), sbs-recompute-split5-adam-factored: with
// Adam whose second moment is factored into row and column averages (Adafactor's).
// The time is one whole step; the programs are compiled once, when the Searcher is
// built, and each step's sample is data (compile_ms: the compiling time per step,
// measured, which must be 0).
// Counters: step_ms_median (of 5 steps after one warm-up step), compile_ms (per step,
// over the first step and the timed ones), setup_compile_ms, arena_bytes (every
// activation, kept value and SBS hand-on, planned for every sample), handed_bytes (of
// the arena: values between SBS phases), persistent_bytes (weights, the gradient block,
// optimizer state), total_bytes (their sum: the planned peak), and
// peak_rss_bytes (the process's ru_maxrss after the case; meaningful only when a
// process runs one case: bench/search_modes.py runs each case in its own process),
// setup_peak_rss_bytes (ru_maxrss once the Searcher is built, before any step) and
// steady_rss_bytes (VmRSS after the last step). ONNAS_BENCH_SMAPS=FILE writes the
// process's /proc/self/smaps there after the case: where the resident bytes lie.
//
//   onnas_bench_search --benchmark_filter='search_step/omniglot/.*' --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "graph/compile.h"
#include "nas/search.h"
#include "runtime/heap.h"
#include "runtime/rng.h"
#include "runtime/threading.h"

using namespace onnas;

namespace {

struct BenchConfig {
  const char* name;
  int channels, classes;
  int64_t batch;
};
constexpr BenchConfig kConfigs[] = {{"fmnist", 16, 10, 32}, {"omniglot", 28, 5, 25}};

struct BenchMode {
  const char* name;
  nas::StepConfig step;
  // The weights' optimizer: Adam with betas (0, 0.999), one moment per weight (the
  // research code's), that moment in bf16 or factored (Adafactor's), or plain SGD without momentum, which keeps
  // no state (ONNAS.md section 3 allows either).
  nas::WeightOptimizer optimizer = nas::WeightOptimizer::adam;
};
const std::vector<BenchMode>& modes() {
  static const std::vector<BenchMode> m = {
      {"full", {.mode = nas::Mode::full}},
      {"ops", {.mode = nas::Mode::ops}},
      {"ops+pairs", {.mode = nas::Mode::ops_pairs}},
      {"sbs-recompute", {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute}},
      {"sbs-checkpoint", {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::checkpoint}},
      {"full-split5", {.mode = nas::Mode::full, .split = 5}},
      {"sbs-recompute-split5", {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .split = 5}},
      {"sbs-recompute-split5-sgd",
       {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .split = 5},
       nas::WeightOptimizer::sgd},
      {"sbs-recompute-split5-adam-bf16",
       {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .split = 5},
       nas::WeightOptimizer::adam_bf16},
      {"sbs-recompute-split5-adam-factored",
       {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .split = 5},
       nas::WeightOptimizer::adam_factored},
  };
  return m;
}

int bench_threads() {
  const char* t = std::getenv("ONNAS_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

// VmRSS of this process now.
size_t current_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return size_t(std::stoull(line.substr(6))) * 1024;
  return 0;
}

// The process's peak RSS so far.
size_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return size_t(ru.ru_maxrss) * 1024;
}

void fill(Rng& rng, Tensor x, Tensor y, int classes) {
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
  for (int64_t i = 0; i < y.numel(); ++i) y.i32()[i] = int32_t(rng.uniform_int(classes));
}

void search_step(benchmark::State& state, BenchConfig c, nas::StepConfig step, nas::WeightOptimizer optimizer) {
  return_large_blocks_to_system();  // as the onnas tool starts
  set_num_threads(bench_threads());
  nas::SearchSpace space;
  space.channels = c.channels;
  space.classes = c.classes;
  nas::SearchOptions options;
  options.batch = c.batch;
  options.step = step;
  options.w_optimizer = optimizer;
  if (optimizer == nas::WeightOptimizer::sgd) options.w_momentum = 0.0f;
  // The process before the step exists (code, libraries, threads, the benchmark
  // library): the fixed overhead the peak RSS is held against.
  parallel_for(0, 64, 1, [](int64_t, int64_t) {});
  const size_t overhead = current_rss_bytes();
  ParamStore params;
  const double c0 = graph::compile_seconds_total();
  nas::Searcher searcher(space, options, params, 1);
  const double c1 = graph::compile_seconds_total();
  const size_t setup_peak = peak_rss_bytes();
  const Shape xs{c.batch, 1, 28, 28};
  Buffer xb(size_t(xs.numel()) * 4), yb(size_t(c.batch) * 4), vxb(size_t(xs.numel()) * 4), vyb(size_t(c.batch) * 4);
  Tensor x(xb.data(), xs), y(yb.data(), Shape{c.batch}, DType::i32);
  Tensor vx(vxb.data(), xs), vy(vyb.data(), Shape{c.batch}, DType::i32);
  Rng rng(7);
  fill(rng, x, y, c.classes);
  fill(rng, vx, vy, c.classes);
  int64_t t = 0;
  const int64_t horizon = 1000;
  searcher.set_progress(t++, horizon);
  searcher.step(x, y, vx, vy);  // the first step: counted in compile_ms, not timed
  std::vector<double> ms;
  for (auto _ : state) {
    searcher.set_progress(t++, horizon);
    const auto t0 = std::chrono::steady_clock::now();
    nas::StepResult r = searcher.step(x, y, vx, vy);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    benchmark::DoNotOptimize(r);
  }
  const double c2 = graph::compile_seconds_total();
  std::sort(ms.begin(), ms.end());
  state.counters["step_ms_median"] = ms[ms.size() / 2];
  state.counters["compile_ms"] = (c2 - c1) * 1e3 / double(ms.size() + 1);
  state.counters["setup_compile_ms"] = (c1 - c0) * 1e3;
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  state.counters["arena_bytes"] = double(searcher.arena_bytes());
  state.counters["handed_bytes"] = double(searcher.handed_bytes());
  const size_t persistent = params.bytes() + searcher.grad_bytes();  // the sampled weights' gradients: a block
  state.counters["persistent_bytes"] = double(persistent);
  const size_t tables = searcher.compiled().table_bytes();
  const size_t total = searcher.arena_bytes() + persistent + tables;
  state.counters["table_bytes"] = double(tables);
  state.counters["total_bytes"] = double(total);
  state.counters["overhead_bytes"] = double(overhead);
  state.counters["peak_rss_bytes"] = double(ru.ru_maxrss) * 1024.0;
  state.counters["setup_peak_rss_bytes"] = double(setup_peak);
  state.counters["steady_rss_bytes"] = double(current_rss_bytes());
  state.counters["rss_over_plan"] = double(ru.ru_maxrss) * 1024.0 / double(total + overhead);
  state.counters["threads"] = double(num_threads());
  // ONNAS_BENCH_SMAPS=FILE: where the resident bytes lie after the case (/proc/self/smaps).
  if (const char* f = std::getenv("ONNAS_BENCH_SMAPS")) {
    std::ifstream in("/proc/self/smaps");
    std::ofstream(f) << in.rdbuf();
  }
}

[[maybe_unused]] const bool registered = [] {
  for (const BenchConfig& c : kConfigs)
    for (const BenchMode& m : modes()) {
      if (c.batch % m.step.split != 0) continue;
      benchmark::RegisterBenchmark((std::string("search_step/") + c.name + "/" + m.name).c_str(), search_step, c,
                                   m.step, m.optimizer)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Iterations(5);
    }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
