// `onnas plan`: plans the memory of a configured step and prints it before running
// anything; writes the plan as JSON (--out), a self-contained HTML timeline, or
// Graphviz. Networks: the search step (`search`), the training step of a genotype's
// network (`train`), and inference of a model file at a chosen batch (`infer`, batch
// 1 by default: what a deployed network needs). `--buffers FILE.json` plans an
// arbitrary buffer list instead.
#include <algorithm>
#include <cstdio>

#include "apps/onnas/cli.h"
#include "apps/onnas/common.h"
#include "apps/onnas/model_file.h"
#include "apps/onnas/output.h"
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
  std::string network = "search";  // search | train | infer
  std::string program = "weight";  // weight | arch (search only)
  std::string genotype, model;
  int64_t batch = 32;              // infer: 1 unless given
  int in_channels = 1, image_size = 28, classes = 10;
  std::string strategy = "best";
  std::string out, html, dot, buffers;
  std::string legacy_json;         // --json FILE, the old form of --out FILE
  bool overwrite = false;
  std::string optimizer = "adam";  // the search's weight optimizer: its state is persistent memory
  float momentum = 0.9f;
  Output report{"plan"};
};

// A buffer list's text: 100,000 buffers take about 10 MB, and parsing costs up to
// about 15 times the text, so a larger file is refused before it is read.
std::string read_text(const std::string& path) {
  constexpr size_t kMaxListBytes = size_t(64) << 20;
  return read_text_file(path, "buffer list", kMaxListBytes);
}

// Writes --out (the whole plan as JSON) and --html; returns their paths for the summary.
nlohmann::json write_dumps(const PlanArgs& a, const std::vector<planner::BufferRequest>& buffers,
                           const planner::Plan& plan, const std::string& title, nlohmann::json extra) {
  nlohmann::json written = nlohmann::json::object();
  if (!a.out.empty()) {
    nlohmann::json j = planner::plan_to_json(buffers, plan);
    for (auto& [k, v] : extra.items()) j[k] = v;
    write_file_atomic(a.out, j.dump(1) + "\n");
    std::fprintf(stderr, "wrote %s\n", a.out.c_str());
    written["plan"] = a.out;
  }
  if (!a.html.empty()) {
    write_file_atomic(a.html, planner::plan_to_html(buffers, plan, title));
    std::fprintf(stderr, "wrote %s\n", a.html.c_str());
    written["html"] = a.html;
  }
  return written;
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

// The summary of a plan (one program or a schedule), and the dumps asked for; the
// summary's figures as JSON.
nlohmann::json report_plan(const PlanArgs& a, const std::vector<planner::BufferRequest>& buffers,
                           const planner::ChoiceTree& tree, const planner::Plan& plan, const std::string& title,
                           const Persistent& persistent, size_t handed_bytes, size_t table_bytes,
                           const graph::Program* dot) {
  const planner::ConcretePlan c = concrete(buffers, tree, plan);
  const size_t total = plan.arena_bytes + persistent.total() + table_bytes;
  FILE* out = a.report.human();
  const int steps = buffers.empty() ? 0
                                    : 1 + std::max_element(buffers.begin(), buffers.end(), [](const auto& x, const auto& y) {
                                            return x.last_step < y.last_step;
                                          })->last_step;
  std::fprintf(out, "%s\n", title.c_str());
  std::fprintf(out, "  steps %d, buffers %zu, run-time choices %zu in %zu groups\n", steps, buffers.size(),
               tree.choices.size(), tree.groups.size());
  std::fprintf(out, "  arena        %12zu bytes  %s  (every admissible sample; lower bound %s, ratio %.3f)\n",
              plan.arena_bytes, format_bytes(double(plan.arena_bytes)).c_str(),
              format_bytes(double(plan.lower_bound_bytes)).c_str(),
              double(plan.arena_bytes) / double(std::max<size_t>(1, plan.lower_bound_bytes)));
  if (handed_bytes > 0)
    std::fprintf(out, "    of which   %12zu bytes  %s  handed between SBS phases (cell inputs, gradients of cell outputs)\n",
                handed_bytes, format_bytes(double(handed_bytes)).c_str());
  std::fprintf(out, "  persistent   %12zu bytes  %s  (weights %s, gradients %s, optimizer state %s, arch %s, buffers %s)\n",
              persistent.total(), format_bytes(double(persistent.total())).c_str(),
              format_bytes(double(persistent.weights)).c_str(), format_bytes(double(persistent.grads)).c_str(),
              format_bytes(double(persistent.state)).c_str(), format_bytes(double(persistent.arch)).c_str(),
              format_bytes(double(persistent.buffers)).c_str());
  std::fprintf(out, "  step tables  %12zu bytes  %s  (heap of the compiled programs: what running needs besides the arena)\n",
               table_bytes, format_bytes(double(table_bytes)).c_str());
  std::fprintf(out, "  total        %12zu bytes  %s\n\n", total, format_bytes(double(total)).c_str());
  if (!tree.empty()) std::fprintf(out, "drawn with the largest choice of each group open (the worst case)\n");
  std::fprintf(out, "%s", planner::plan_summary(c.buffers, c.plan).c_str());
  nlohmann::json written = write_dumps(a, c.buffers, c.plan, title,
                                       {{"persistent_bytes", persistent.total()},
                                        {"table_bytes", table_bytes},
                                        {"handed_bytes", handed_bytes},
                                        {"total_bytes", total},
                                        {"choices", tree.choices.size()},
                                        {"title", title}});
  if (!a.dot.empty() && dot) {
    write_file_atomic(a.dot, graph::program_to_dot(*dot));
    std::fprintf(stderr, "wrote %s\n", a.dot.c_str());
    written["dot"] = a.dot;
  }
  return {{"title", title},
          {"steps", steps},
          {"buffers", buffers.size()},
          {"choices", tree.choices.size()},
          {"arena_bytes", plan.arena_bytes},
          {"lower_bound_bytes", plan.lower_bound_bytes},
          {"handed_bytes", handed_bytes},
          {"persistent_bytes", persistent.total()},
          {"persistent",
           {{"weights", persistent.weights},
            {"gradients", persistent.grads},
            {"optimizer_state", persistent.state},
            {"arch", persistent.arch},
            {"buffers", persistent.buffers}}},
          {"total_bytes", total},
          {"table_bytes", table_bytes},
          {"outputs", written}};
}

// Every memory mode side by side for this configuration (k_grad and split as given);
// the rows as JSON.
nlohmann::json print_mode_table(FILE* out, const nas::SearchSpace& space, const nas::SearchOptions& options,
                                const ParamStore& params) {
  std::fprintf(out, "memory modes, %s, batch %lld (planned for every admissible sample)\n", space.describe().c_str(),
               (long long)options.batch);
  std::fprintf(out, "  %-44s %12s %12s %12s %12s %12s %8s\n", "mode", "arena", "of it handed", "persistent",
               "step tables", "total", "vs full");
  nlohmann::json rows = nlohmann::json::array();
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
    std::fprintf(out, "  %-44s %12s %12s %12s %12s %12s %7.1fx\n", c.describe().c_str(),
                 format_bytes(double(e.arena_bytes)).c_str(), format_bytes(double(e.handed_bytes)).c_str(),
                 format_bytes(double(e.persistent_bytes)).c_str(), format_bytes(double(e.table_bytes)).c_str(),
                 format_bytes(double(e.total_bytes())).c_str(), double(full_total) / double(e.total_bytes()));
    rows.push_back({{"mode", c.describe()},
                    {"arena_bytes", e.arena_bytes},
                    {"handed_bytes", e.handed_bytes},
                    {"persistent_bytes", e.persistent_bytes},
                    {"table_bytes", e.table_bytes},
                    {"total_bytes", e.total_bytes()},
                    {"times_below_full", double(full_total) / double(e.total_bytes())}});
  }
  std::fprintf(out, "\n");
  return rows;
}

// Inference of a discrete network (a model file's, or --genotype's in the space of the
// flags) at a batch: forward only, running statistics, no gradients, no optimizer
// state; what a deployed network needs.
void run_infer_plan(const PlanArgs& a, const CLI::App& cmd) {
  nas::SearchSpace space;
  nas::Genotype genotype;
  std::string from;
  if (!a.model.empty()) {
    const ModelFile m = read_model_file(a.model);
    space = m.info.space, genotype = m.info.genotype, from = a.model;
  } else if (!a.genotype.empty()) {
    const GenotypeSource gs = load_genotype_arg(a.genotype);
    space = a.space.space_with(cmd, gs.space, a.in_channels, a.image_size, a.image_size, a.classes);
    genotype = gs.genotype, from = gs.name;
  } else {
    usage_fail("--network infer needs --model FILE (a model of onnas train) or --genotype");
  }
  genotype.validate(space, from);
  graph::Graph g;
  nas::SearchNet net = nas::emit_discrete_net(g, space, genotype, a.batch, /*training=*/false);
  ParamStore params;
  Rng rng(1);
  nas::init_params(params, g, rng);
  graph::Program prog = graph::compile(g, {.outputs = {net.logits}, .strategy = strategy_of(a.strategy)});
  const Persistent p{.weights = params.bytes(ParamKind::weight), .buffers = params.bytes(ParamKind::buffer)};
  const std::string title = fmt::format("inference, {}, batch {}", space.describe(), a.batch);
  nlohmann::json doc = report_plan(a, prog.buffers(), prog.choices(), prog.plan(), title, p, 0, prog.table_bytes(), &prog);
  doc["network"] = "infer";
  doc["batch"] = a.batch;
  doc["genotype_darts"] = genotype.str();
  if (!a.model.empty()) doc["model"] = a.model;
  a.report.document(doc);
}

// Which flags the chosen network leaves unused.
void warn_ignored_flags(const PlanArgs& a, const CLI::App& cmd) {
  if (!a.buffers.empty()) {
    warn_ignored(cmd, SpaceOptions::kFlags, "--buffers plans the given list");
    warn_ignored(cmd, {"--network", "--genotype", "--model", "--batch", "--mode", "--memory-budget"},
                 "--buffers plans the given list");
    return;
  }
  if (a.network == "search") {
    warn_ignored(cmd, {"--genotype", "--model"}, "--network search plans the supernet");
    warn_ignored(cmd, {"--strategy"}, "the search step is planned with the default strategy (best)");
    a.step.warn_ignored(cmd);
    return;
  }
  const std::string why = fmt::format("--network {} plans a discrete network", a.network);
  warn_ignored(cmd, {"--program", "--mode", "--sbs", "--k-grad", "--split", "--memory-budget"}, why);
  if (a.network == "infer") warn_ignored(cmd, {"--optimizer", "--momentum"}, "inference keeps no optimizer");
  if (a.network == "train") warn_ignored(cmd, {"--model"}, "--network train plans from --genotype");
  if (!a.model.empty()) {
    warn_ignored(cmd, SpaceOptions::kFlags, "the model file holds its space");
    warn_ignored(cmd, {"--in-channels", "--image-size", "--classes", "--genotype"}, "the model file holds them");
  }
}

void run_plan(const PlanArgs& a, const CLI::App& cmd) {
  for (const auto& [path, flag] : {std::pair{a.out, "--out"}, {a.html, "--html"}, {a.dot, "--dot"}})
    check_out_file(path, flag, a.overwrite);
  warn_ignored_flags(a, cmd);
  if (!a.buffers.empty()) {
    auto buffers = planner::parse_buffer_list(read_text(a.buffers), a.buffers);
    planner::Plan plan;
    try {
      plan = planner::plan_memory(buffers, strategy_of(a.strategy));
    } catch (const std::invalid_argument& e) {  // the planner's validate() names the buffer, not the file
      fail("{}: {}", a.buffers, e.what());
    }
    planner::check_plan(buffers, plan);
    std::fprintf(a.report.human(), "%s", planner::plan_summary(buffers, plan).c_str());
    const nlohmann::json written = write_dumps(a, buffers, plan, a.buffers, {});
    a.report.document({{"network", "buffers"},
                       {"buffers", buffers.size()},
                       {"arena_bytes", plan.arena_bytes},
                       {"lower_bound_bytes", plan.lower_bound_bytes},
                       {"outputs", written}});
    return;
  }
  ParamStore params;
  if (a.network == "infer") {
    run_infer_plan(a, cmd);
    return;
  }
  nas::SearchSpace space = a.space.space(a.in_channels, a.image_size, a.image_size, a.classes);
  if (a.network == "search") {  // planned with the default strategy (best)
    nas::SearchOptions so;
    so.batch = a.batch;
    so.w_optimizer = nas::parse_weight_optimizer(a.optimizer);
    so.w_momentum = a.momentum;
    a.step.apply(space, so);
    if (a.step.has_budget()) a.step.choose(space, so, 1, 0, "nothing else (the plan of the step alone)");
    params.store_weight_gradients(false);  // the plan counts them in the gradient block
    nas::init_search_params(params, space, 1);
    const nlohmann::json modes = print_mode_table(a.report.human(), space, so, params);
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
    nlohmann::json doc = report_plan(a, s.buffers(), s.choices(), s.plan(), title, p, s.handed_bytes(),
                                     step.table_bytes(), s.num_programs() == 1 ? &s.program(0) : nullptr);
    doc["network"] = "search";
    doc["mode"] = so.step.describe();
    doc["modes"] = modes;
    a.report.document(doc);
    return;
  }
  if (a.genotype.empty()) usage_fail("--network train needs --genotype (a genotype file or a DARTS string)");
  const nas::Genotype genotype = load_genotype_arg(a.genotype).genotype;
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
  nlohmann::json doc = report_plan(a, prog.buffers(), prog.choices(), prog.plan(), title, p, 0, prog.table_bytes(), &prog);
  doc["network"] = "train";
  a.report.document(doc);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Plan the memory of a step and print it, without running anything");
  args->space.add(*cmd);
  args->step.add(*cmd);
  cmd->add_option("--network", args->network,
                  "search (the supernet's step), train (the training step of --genotype's network) or infer "
                  "(inference of --model, or of --genotype's network; batch 1 unless --batch)")
      ->check(CLI::IsMember({"search", "train", "infer"}));
  cmd->add_option("--program", args->program, "Which search program: weight or arch step")
      ->check(CLI::IsMember({"weight", "arch"}));
  add_weight_optimizer_options(*cmd, args->optimizer, args->momentum);
  cmd->add_option("--genotype", args->genotype, "Genotype file or DARTS string (--network train, infer)");
  cmd->add_option("--model", args->model, "Model file of onnas train (--network infer): its space and genotype");
  cmd->add_option("-b,--batch", args->batch, "Batch size (default 32; --network infer: 1)")->check(CLI::Range(1, 4096));
  cmd->add_option("--in-channels", args->in_channels, "Input channels")->check(CLI::Range(1, nas::kMaxInChannels));
  cmd->add_option("--image-size", args->image_size, "Input side (square)")->check(CLI::Range(1, nas::kMaxSide));
  add_renamed(*cmd, "--size", "--image-size", args->image_size);
  cmd->add_option("--classes", args->classes, "Classes")->check(CLI::Range(2, nas::kMaxClasses));
  cmd->add_option("--strategy", args->strategy,
                  "Planner strategy: best, naive, greedy_by_size, greedy_by_breadth, best_fit, size_best_gap, "
                  "breadth_best_gap, area_lowest, area_best_gap");
  cmd->add_option("-o,--out", args->out, "Write the whole plan as JSON (every buffer, its offset and lifetime)");
  cmd->add_option("--html", args->html, "Write a self-contained HTML memory timeline");
  cmd->add_option("--dot", args->dot, "Write the program's graph for Graphviz");
  add_overwrite_flag(*cmd, args->overwrite);
  cmd->add_option("--buffers", args->buffers, "Plan a buffer list [{name, bytes, first, last}] from a JSON file");
  // --json prints the summary as one JSON document; --json FILE is the old form of --out FILE.
  CLI::Option* json =
      cmd->add_option("--json", args->legacy_json,
                      "Print one JSON document on stdout (the summary, every mode, output paths); human text goes to "
                      "stderr")
          ->expected(0, 1);
  cmd->callback([args, cmd, json] {
    if (json->count() > 0) {
      if (args->legacy_json.empty() || args->legacy_json == "-") {
        args->report.set_json(true);
      } else {
        if (!args->out.empty()) usage_fail("give --out FILE once (--json FILE is its old form)");
        warn(fmt::format("'--json {}' is now '--out {}'; the old form will be removed in a later release",
                         args->legacy_json, args->legacy_json));
        args->out = args->legacy_json;
        args->overwrite = true;  // as the old form did
      }
    }
    if (args->network == "infer" && !given(*cmd, "--batch")) args->batch = 1;
    run_plan(*args, *cmd);
  });
}

}  // namespace onnas::app
