// `onnas plan`: plans the memory of a configured step and prints it before running
// anything; dumps the plan as JSON, a self-contained HTML timeline, or Graphviz.
// `--buffers FILE.json` plans an arbitrary buffer list instead.
#include <algorithm>
#include <cstdio>

#include "apps/onnas/common.h"
#include "graph/autodiff.h"
#include "graph/dump.h"
#include "graph/optimizer.h"
#include "memory_planner/dump.h"
#include "memory_planner/choices.h"
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

// A plan's buffers made concrete for printing and dumps: with run-time choices, the
// run that fills every region (each group's largest choices open).
planner::ConcretePlan concrete(const std::vector<planner::BufferRequest>& buffers, const planner::ChoiceTree& tree,
                               const planner::Plan& plan) {
  planner::check_choice_plan(buffers, tree, plan);
  return planner::concretize(buffers, tree, plan, planner::largest_choices(tree, plan));
}

struct Persistent {
  size_t weights = 0, grads = 0, state = 0, arch = 0, buffers = 0;
  size_t total() const { return weights + grads + state + arch + buffers; }
};

// The summary of a plan (one program or a schedule), and the dumps asked for.
void report_plan(const PlanArgs& a, const std::vector<planner::BufferRequest>& buffers,
                 const planner::ChoiceTree& tree, const planner::Plan& plan, const std::string& title,
                 const Persistent& persistent, size_t handed_bytes, size_t table_bytes, const graph::Program* dot) {
  const planner::ConcretePlan c = concrete(buffers, tree, plan);
  const size_t total = plan.arena_bytes + persistent.total() + table_bytes;
  std::printf("%s\n", title.c_str());
  std::printf("  steps %d, buffers %zu, run-time choices %zu in %zu groups\n",
              buffers.empty() ? 0 : 1 + std::max_element(buffers.begin(), buffers.end(), [](const auto& x, const auto& y) {
                                      return x.last_step < y.last_step;
                                    })->last_step,
              buffers.size(), tree.choices.size(), tree.groups.size());
  std::printf("  arena        %12zu bytes  %s  (every admissible sample; lower bound %s, ratio %.3f)\n",
              plan.arena_bytes, format_bytes(double(plan.arena_bytes)).c_str(),
              format_bytes(double(plan.lower_bound_bytes)).c_str(),
              double(plan.arena_bytes) / double(std::max<size_t>(1, plan.lower_bound_bytes)));
  if (handed_bytes > 0)
    std::printf("    of which   %12zu bytes  %s  handed between SBS phases (cell inputs, gradients of cell outputs)\n",
                handed_bytes, format_bytes(double(handed_bytes)).c_str());
  std::printf("  persistent   %12zu bytes  %s  (weights %s, gradients %s, optimizer state %s, arch %s, buffers %s)\n",
              persistent.total(), format_bytes(double(persistent.total())).c_str(),
              format_bytes(double(persistent.weights)).c_str(), format_bytes(double(persistent.grads)).c_str(),
              format_bytes(double(persistent.state)).c_str(), format_bytes(double(persistent.arch)).c_str(),
              format_bytes(double(persistent.buffers)).c_str());
  std::printf("  step tables  %12zu bytes  %s  (heap of the compiled programs: what running needs besides the arena)\n",
              table_bytes, format_bytes(double(table_bytes)).c_str());
  std::printf("  total        %12zu bytes  %s\n\n", total, format_bytes(double(total)).c_str());
  if (!tree.empty()) std::printf("drawn with the largest choice of each group open (the worst case)\n");
  std::printf("%s", planner::plan_summary(c.buffers, c.plan).c_str());
  write_dumps(a, c.buffers, c.plan, title,
              {{"persistent_bytes", persistent.total()},
               {"table_bytes", table_bytes},
               {"handed_bytes", handed_bytes},
               {"total_bytes", total},
               {"choices", tree.choices.size()},
               {"title", title}});
  if (!a.dot.empty() && dot) {
    write_file_atomic(a.dot, graph::program_to_dot(*dot));
    std::fprintf(stderr, "wrote %s\n", a.dot.c_str());
  }
}

// Every memory mode side by side for this configuration (k_grad and split as given).
void print_mode_table(const nas::SearchSpace& space, const nas::SearchOptions& options, const ParamStore& params) {
  std::printf("memory modes, %s, batch %lld (planned for every admissible sample)\n", space.describe().c_str(),
              (long long)options.batch);
  std::printf("  %-44s %12s %12s %12s %12s %12s %8s\n", "mode", "arena", "of it handed", "persistent", "step tables",
              "total", "vs full");
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
    const nas::StepEstimate e = nas::estimate_step(space, o, params);
    if (full_total == 0) full_total = e.total_bytes();  // the first row: full, one batch
    std::printf("  %-44s %12s %12s %12s %12s %12s %7.1fx\n", c.describe().c_str(),
                format_bytes(double(e.arena_bytes)).c_str(), format_bytes(double(e.handed_bytes)).c_str(),
                format_bytes(double(e.persistent_bytes)).c_str(), format_bytes(double(e.table_bytes)).c_str(),
                format_bytes(double(e.total_bytes())).c_str(),
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
  if (a.network == "search") {  // planned with the default strategy (best)
    nas::SearchOptions so;
    so.batch = a.batch;
    so.w_optimizer = a.optimizer == "sgd" ? nas::WeightOptimizer::sgd : nas::WeightOptimizer::adam;
    so.w_momentum = a.momentum;
    a.step.apply(space, so, 1);
    if (a.step.has_budget()) a.step.choose(space, so, 1, 0, "nothing else (the plan of the step alone)");
    params.store_weight_gradients(false);  // the plan counts them in the gradient block
    nas::init_search_params(params, space, 1);
    print_mode_table(space, so, params);
    // The chosen mode's pass: its whole schedule, planned, nothing allocated.
    const nas::CompiledStep step(space, so, params);
    const nas::StepEstimate e = nas::estimate_step(space, so, params);
    const nas::GradientPass& pass = a.program == "arch" ? step.arch() : step.weight();
    const graph::Schedule& s = pass.schedule();
    Persistent p;
    for (const auto& en : params.entries()) {
      if (en->kind == ParamKind::weight) p.weights += en->tensor.bytes();
      if (en->kind == ParamKind::arch) p.arch += 2 * en->tensor.bytes();  // and its gradient
    }
    p.grads = so.sparse_weight_grads ? e.grad_bytes : p.weights;
    p.state = nas::optimizer_state_bytes(params, so);
    const std::string title = fmt::format("search step ({} pass, {}; a schedule of {} program{}), {}, batch {}",
                                          a.program, so.step.describe(), s.num_programs(),
                                          s.num_programs() == 1 ? "" : "s", space.describe(), a.batch);
    report_plan(a, s.buffers(), s.choices(), s.plan(), title, p, s.handed_bytes(), step.table_bytes(),
                s.num_programs() == 1 ? &s.program(0) : nullptr);
    return;
  }
  if (a.genotype.empty()) fail("--network train needs --genotype FILE");
  nas::Genotype genotype = nas::Genotype::load(a.genotype);
  graph::Graph g;
  nas::SearchNet net = nas::emit_discrete_net(g, space, genotype, a.batch, true);
  Rng rng(1);
  nas::init_params(params, g, rng);
  graph::Sgd sgd({.momentum = 0.9f});
  sgd.add_params(params, ParamKind::weight);
  std::vector<graph::ValueId> wrt = nas::params_of_kind(g, params, ParamKind::weight);
  const std::string title = fmt::format("training step, {}, batch {}", space.describe(), a.batch);
  std::vector<graph::ValueId> grads = graph::backward(g, net.loss, wrt);
  graph::CompileOptions co{.outputs = {net.loss, net.logits}, .strategy = strategy_of(a.strategy)};
  for (size_t i = 0; i < wrt.size(); ++i) co.param_grads.emplace_back(wrt[i], grads[i]);
  graph::Program prog = graph::compile(g, co);
  Persistent p{.weights = params.bytes(ParamKind::weight), .grads = params.bytes(ParamKind::grad),
               .state = params.bytes(ParamKind::state), .arch = params.bytes(ParamKind::arch),
               .buffers = params.bytes(ParamKind::buffer)};
  report_plan(a, prog.buffers(), prog.choices(), prog.plan(), title, p, 0, prog.table_bytes(), &prog);
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
