// `onnas plan`: plans the memory of a configured step and prints it before running
// anything; dumps the plan as JSON, a self-contained HTML timeline, or Graphviz.
// `--buffers FILE.json` plans an arbitrary buffer list instead.
#include <cstdio>

#include "apps/onnas/common.h"
#include "graph/autodiff.h"
#include "graph/dump.h"
#include "graph/optimizer.h"
#include "memory_planner/dump.h"
#include "memory_planner/planner.h"
#include "nas/genotype.h"
#include "nas/memory_budget.h"
#include "nas/network.h"
#include "nas/search.h"
#include "nas/space_limits.h"
#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"

namespace onnas::app {
namespace {

struct PlanArgs {
  SpaceOptions space;
  StepOptions step;
  std::string network = "search";  // search | train
  std::string program = "weight";  // weight | arch (search only)
  std::string genotype;
  int64_t batch = 32;
  int in_channels = 1, size = 28, classes = 10;
  std::string strategy = "best";
  std::string json, html, dot, buffers;
  std::string optimizer = "adam";  // the search's weight optimizer: its state is persistent memory
  float momentum = 0.9f;
};

// A buffer list's text: 100,000 buffers take about 10 MB, and parsing costs up to
// about 15 times the text, so a larger file is refused before it is read.
std::string read_text(const std::string& path) {
  constexpr size_t kMaxListBytes = size_t(64) << 20;
  return read_text_file(path, "buffer list", kMaxListBytes);
}

void write_dumps(const PlanArgs& a, const std::vector<planner::BufferRequest>& buffers, const planner::Plan& plan,
                 const std::string& title, nlohmann::json extra) {
  if (!a.json.empty()) {
    nlohmann::json j = planner::plan_to_json(buffers, plan);
    for (auto& [k, v] : extra.items()) j[k] = v;
    write_file_atomic(a.json, j.dump(1) + "\n");
    std::fprintf(stderr, "wrote %s\n", a.json.c_str());
  }
  if (!a.html.empty()) {
    write_file_atomic(a.html, planner::plan_to_html(buffers, plan, title));
    std::fprintf(stderr, "wrote %s\n", a.html.c_str());
  }
}

planner::Strategy strategy_of(const std::string& name) {
  auto s = planner::strategy_from_name(name);
  if (!s) fail("unknown --strategy '{}'", name);
  return *s;
}

// The summary of one compiled program, its plan, and the dumps asked for.
// grad_block_bytes: the search's block of sampled weight gradients (outside the store).
void report_program(const PlanArgs& a, const graph::Program& p, const ParamStore& params, const std::string& title,
                    size_t side_bytes, size_t grad_block_bytes) {
  planner::check_plan(p.buffers(), p.plan());
  const size_t persistent = params.bytes() + grad_block_bytes;
  const size_t total = p.arena_bytes() + side_bytes + persistent;
  std::printf("%s\n", title.c_str());
  std::printf("  nodes %zu, buffers %zu\n", p.order().size(), p.buffers().size());
  std::printf("  arena        %12zu bytes  %s\n", p.arena_bytes(), format_bytes(double(p.arena_bytes())).c_str());
  std::printf("  lower bound  %12zu bytes  %s  (arena / bound %.3f; build order's bound %s)\n", p.lower_bound_bytes(),
              format_bytes(double(p.lower_bound_bytes())).c_str(),
              double(p.arena_bytes()) / double(std::max<size_t>(1, p.lower_bound_bytes())),
              format_bytes(double(p.build_order_lower_bound_bytes())).c_str());
  if (side_bytes > 0)
    std::printf("  SBS side     %12zu bytes  %s  (kept cell outputs and handed-on gradients, planned)\n", side_bytes,
                format_bytes(double(side_bytes)).c_str());
  std::printf("  persistent   %12zu bytes  %s  (weights %s, gradients %s, optimizer state %s, arch %s, buffers %s)\n",
              persistent, format_bytes(double(persistent)).c_str(),
              format_bytes(double(params.bytes(ParamKind::weight))).c_str(),
              format_bytes(double(params.bytes(ParamKind::grad) + grad_block_bytes)).c_str(),
              format_bytes(double(params.bytes(ParamKind::state))).c_str(),
              format_bytes(double(params.bytes(ParamKind::arch))).c_str(),
              format_bytes(double(params.bytes(ParamKind::buffer))).c_str());
  std::printf("  total        %12zu bytes  %s\n\n", total, format_bytes(double(total)).c_str());
  std::printf("%s", planner::plan_summary(p.buffers(), p.plan()).c_str());
  write_dumps(a, p.buffers(), p.plan(), title,
              {{"persistent_bytes", persistent},
               {"side_bytes", side_bytes},
               {"total_bytes", total},
               {"build_order_lower_bound_bytes", p.build_order_lower_bound_bytes()},
               {"title", title}});
  if (!a.dot.empty()) {
    write_file_atomic(a.dot, graph::program_to_dot(p));
    std::fprintf(stderr, "wrote %s\n", a.dot.c_str());
  }
}

// Every memory mode side by side for this configuration (k_grad and split as given).
void print_mode_table(const nas::SearchSpace& space, const nas::SearchOptions& options) {
  std::printf("memory modes, %s, batch %lld (planned; sampled modes: the largest of 3 samples)\n",
              space.describe().c_str(), (long long)options.batch);
  std::printf("  %-44s %12s %12s %12s %12s %8s\n", "mode", "arena", "SBS side", "persistent", "total", "vs full");
  size_t full_total = 0;
  const nas::StepConfig base = options.step;
  std::vector<nas::StepConfig> configs = {{.mode = nas::Mode::full, .k_grad = base.k_grad, .split = 1}};
  if (base.split > 1) configs.push_back({.mode = nas::Mode::full, .k_grad = base.k_grad, .split = base.split});
  configs.insert(configs.end(), {
      {.mode = nas::Mode::ops, .k_grad = base.k_grad, .split = base.split},
      {.mode = nas::Mode::ops_pairs, .k_grad = base.k_grad, .split = base.split},
      {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::checkpoint, .k_grad = base.k_grad, .split = base.split},
      {.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .k_grad = base.k_grad, .split = base.split}});
  for (const nas::StepConfig& c : configs) {
    nas::SearchOptions o = options;
    o.step = c;
    const nas::StepEstimate e = nas::estimate_step(space, o, 1);
    if (full_total == 0) full_total = e.total_bytes();  // the first row: full, one batch
    std::printf("  %-44s %12s %12s %12s %12s %7.1fx\n", c.describe().c_str(),
                format_bytes(double(e.arena_bytes)).c_str(), format_bytes(double(e.side_bytes)).c_str(),
                format_bytes(double(e.persistent_bytes)).c_str(), format_bytes(double(e.total_bytes())).c_str(),
                double(full_total) / double(e.total_bytes()));
  }
  std::printf("\n");
}

void run_plan(const PlanArgs& a) {
  if (!a.buffers.empty()) {
    auto buffers = planner::parse_buffer_list(read_text(a.buffers), a.buffers);
    planner::Plan plan;
    try {
      plan = planner::plan_memory(buffers, strategy_of(a.strategy));
    } catch (const std::invalid_argument& e) {  // the planner's validate() names the buffer, not the file
      fail("{}: {}", a.buffers, e.what());
    }
    planner::check_plan(buffers, plan);
    std::printf("%s", planner::plan_summary(buffers, plan).c_str());
    write_dumps(a, buffers, plan, a.buffers, {});
    return;
  }
  data::Dataset shape_only;
  shape_only.C = a.in_channels;
  shape_only.H = shape_only.W = a.size;
  shape_only.num_classes = a.classes;
  nas::SearchSpace space = a.space.space(shape_only);
  ParamStore params;
  graph::Graph g;
  std::vector<graph::ValueId> wrt;
  nas::SearchNet net;
  std::string title;
  if (a.network == "search") {  // planned with the default strategy (best)
    nas::SearchOptions so;
    so.batch = a.batch;
    so.w_optimizer = a.optimizer == "sgd" ? nas::WeightOptimizer::sgd : nas::WeightOptimizer::adam;
    so.w_momentum = a.momentum;
    a.step.apply(space, so, 1);
    print_mode_table(space, so);
    nas::Searcher searcher(space, so, params, 1);  // creates parameters and optimizer state
    // The largest program of the chosen mode's pass, for the detailed plan and dumps.
    const nas::Searcher::Passes& passes = searcher.prepare(searcher.upcoming_samples(1)[0]);
    const nas::GradientPass& pass = a.program == "arch" ? passes.arch : passes.weight;
    const nas::GradientPass::Labeled* largest = nullptr;
    const auto programs = pass.programs();
    for (const auto& l : programs)
      if (!largest || l.program->arena_bytes() > largest->program->arena_bytes()) largest = &l;
    const graph::Program& p = *largest->program;
    title = fmt::format("search step ({} pass, {}; its largest program: {}), {}, batch {}", a.program,
                        so.step.describe(), largest->label, space.describe(), a.batch);
    report_program(a, p, params, title, pass.side_bytes(), searcher.grad_bytes());
    return;
  }
  if (a.genotype.empty()) fail("--network train needs --genotype FILE");
  nas::Genotype genotype = nas::Genotype::load(a.genotype);
  net = nas::emit_discrete_net(g, space, genotype, a.batch, true);
  Rng rng(1);
  nas::init_params(params, g, rng);
  graph::Sgd sgd({.momentum = 0.9f});
  sgd.add_params(params, ParamKind::weight);
  wrt = nas::params_of_kind(g, params, ParamKind::weight);
  title = fmt::format("training step, {}, batch {}", space.describe(), a.batch);
  std::vector<graph::ValueId> grads = graph::backward(g, net.loss, wrt);
  graph::CompileOptions co{.outputs = {net.loss, net.logits}, .strategy = strategy_of(a.strategy)};
  for (size_t i = 0; i < wrt.size(); ++i) co.param_grads.emplace_back(wrt[i], grads[i]);
  graph::Program p = graph::compile(g, co);
  report_program(a, p, params, title, 0, 0);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Plan the memory of a step and print it, without running anything");
  args->space.add(*cmd);
  args->step.add(*cmd);
  cmd->add_option("--network", args->network, "search (supernet step) or train (discrete network of --genotype)")
      ->check(CLI::IsMember({"search", "train"}));
  cmd->add_option("--program", args->program, "Which search program: weight or arch step")
      ->check(CLI::IsMember({"weight", "arch"}));
  add_weight_optimizer_options(*cmd, args->optimizer, args->momentum);
  cmd->add_option("--genotype", args->genotype, "Genotype JSON (for --network train)");
  cmd->add_option("-b,--batch", args->batch, "Batch size")->check(CLI::Range(1, 4096));
  cmd->add_option("--in-channels", args->in_channels, "Input channels")->check(CLI::Range(1, nas::kMaxInChannels));
  cmd->add_option("--size", args->size, "Input side (square)")->check(CLI::Range(1, nas::kMaxSide));
  cmd->add_option("--classes", args->classes, "Classes")->check(CLI::Range(2, nas::kMaxClasses));
  cmd->add_option("--strategy", args->strategy,
                  "Planner strategy: best, naive, greedy_by_size, greedy_by_breadth, best_fit, size_best_gap, "
                  "breadth_best_gap, area_lowest, area_best_gap");
  cmd->add_option("--json", args->json, "Write the whole plan as JSON");
  cmd->add_option("--html", args->html, "Write a self-contained HTML memory timeline");
  cmd->add_option("--dot", args->dot, "Write the program's graph for Graphviz");
  cmd->add_option("--buffers", args->buffers, "Plan a buffer list [{name, bytes, first, last}] from a JSON file");
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace onnas::app
