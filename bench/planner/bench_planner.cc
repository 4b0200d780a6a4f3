// Planning time for training-step-shaped buffer sets (memory_planner/synthetic.h: forward
// activations saved until their backward use, short-lived gradients, one-step
// workspaces, in-place ReLUs), per strategy and for `best`. Counters: the arena over the
// lower bound (1.0 is optimal), the arena in MiB, and the buffer count.
//
//   build-plan/bench/onnas_bench_planner --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <map>
#include <utility>

#include "memory_planner/planner.h"
#include "memory_planner/synthetic.h"

namespace {

using onnas::planner::BufferRequest;
using onnas::planner::Strategy;

const std::vector<BufferRequest>& buffers_for(size_t count) {
  static std::map<size_t, std::vector<BufferRequest>> cache;
  auto it = cache.find(count);
  if (it == cache.end())
    it = cache.emplace(count, onnas::planner::synthetic_training_step({.target_buffers = count, .seed = 2024})).first;
  return it->second;
}

void BM_plan(benchmark::State& state, Strategy strategy) {
  const auto& buffers = buffers_for(size_t(state.range(0)));
  onnas::planner::Plan plan;
  for (auto _ : state) {
    plan = onnas::planner::plan_memory(buffers, strategy);
    benchmark::DoNotOptimize(plan.arena_bytes);
  }
  state.counters["buffers"] = double(buffers.size());
  state.counters["arena/lb"] = double(plan.arena_bytes) / double(std::max<size_t>(plan.lower_bound_bytes, 1));
  state.counters["arena_MiB"] = double(plan.arena_bytes) / (1024.0 * 1024.0);
  state.SetLabel(std::string(onnas::planner::strategy_name(plan.strategy)));
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {100, 1000, 10000, 100000}) b->Arg(n);
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK_CAPTURE(BM_plan, naive, Strategy::naive)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, greedy_by_size, Strategy::greedy_by_size)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, greedy_by_breadth, Strategy::greedy_by_breadth)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, best_fit, Strategy::best_fit)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, size_best_gap, Strategy::size_best_gap)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, breadth_best_gap, Strategy::breadth_best_gap)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, area_lowest, Strategy::area_lowest)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, area_best_gap, Strategy::area_best_gap)->Apply(sizes);
BENCHMARK_CAPTURE(BM_plan, best, Strategy::best)->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
