// The planner on the graphs the project itself runs, at the default Fashion-MNIST
// configuration (C=16, 4 cells, reductions 1 and 3, 3 nodes, 7 ops, batch 32): the
// discrete network's training step, the full and the sampled (ops+pairs) search
// step's weight and architecture programs, and every program of a step-by-step pass
// (recompute and checkpoint, split 1 and 4). Each case times plan_memory() on the
// program's buffer list with the default strategy; counters: arena / lower bound
// (1.0 is optimal), arena and lower bound in MiB, buffers.
//
//   onnas_bench_planner --benchmark_filter=project/ --benchmark_repetitions=3 \
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "graph/compile.h"
#include "memory_planner/choices.h"
#include "memory_planner/planner.h"
#include "nas/genotype.h"
#include "nas/network.h"
#include "nas/sampler.h"
#include "nas/search_step.h"

using namespace onnas;

namespace {

struct Case {
  std::string name;
  std::vector<planner::BufferRequest> buffers;
};

std::vector<Case> project_cases() {
  std::vector<Case> cases;
  nas::SearchSpace space;
  const int64_t batch = 32;
  ParamStore params;
  {
    graph::Graph g;
    nas::emit_search_net(g, space, batch);
    Rng rng(1);
    nas::init_params(params, g, rng);
  }
  {
    // The discrete network of the genotype the fresh supernet derives.
    const nas::Genotype genotype = nas::derive_genotype(space, params);
    graph::Graph g;
    nas::SearchNet net = nas::emit_discrete_net(g, space, genotype, batch, true);
    ParamStore dp;
    Rng rng(2);
    nas::init_params(dp, g, rng);
    const std::vector<graph::ValueId> wrt = nas::params_of_kind(g, dp, ParamKind::weight);
    std::vector<graph::ValueId> grads = graph::backward(g, net.loss, wrt);
    graph::CompileOptions o{.outputs = {net.loss, net.logits}};
    for (size_t i = 0; i < wrt.size(); ++i) o.param_grads.emplace_back(wrt[i], grads[i]);
    cases.push_back({"discrete_train_step", graph::compile(g, o).buffers()});
  }
  // Each pass's schedule, with the largest choices open (the worst sample), as a flat list.
  struct PassCase {
    const char* name;
    nas::StepConfig config;
  };
  const PassCase passes[] = {
      {"full", {.mode = nas::Mode::full}},
      {"ops+pairs", {.mode = nas::Mode::ops_pairs}},
      {"sbs_recompute", {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute}},
      {"sbs_checkpoint", {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::checkpoint}},
      {"sbs_recompute_split4", {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .split = 4}},
  };
  for (const PassCase& pc : passes) {
    nas::StepGates gates(space, pc.config);
    for (ParamKind kind : {ParamKind::weight, ParamKind::arch}) {
      nas::GradientPass pass(space, pc.config, batch, gates, kind, params);
      const graph::Schedule& s = pass.schedule();
      planner::ConcretePlan c =
          planner::concretize(s.buffers(), s.choices(), s.plan(), planner::largest_choices(s.choices(), s.plan()));
      cases.push_back({std::string(pc.name) + (kind == ParamKind::weight ? "/weight" : "/arch"), std::move(c.buffers)});
    }
  }
  return cases;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = project_cases();
  return c;
}

void BM_project(benchmark::State& state, size_t index) {
  const Case& c = cases()[index];
  planner::Plan plan;
  for (auto _ : state) {
    plan = planner::plan_memory(c.buffers);
    benchmark::DoNotOptimize(plan.arena_bytes);
  }
  state.counters["buffers"] = double(c.buffers.size());
  state.counters["arena/lb"] = double(plan.arena_bytes) / double(std::max<size_t>(plan.lower_bound_bytes, 1));
  state.counters["arena_MiB"] = double(plan.arena_bytes) / (1024.0 * 1024.0);
  state.counters["lb_MiB"] = double(plan.lower_bound_bytes) / (1024.0 * 1024.0);
  state.SetLabel(std::string(planner::strategy_name(plan.strategy)));
}

[[maybe_unused]] const bool registered = [] {
  for (size_t i = 0; i < cases().size(); ++i)
    benchmark::RegisterBenchmark(("project/" + cases()[i].name).c_str(), BM_project, i)
        ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace
