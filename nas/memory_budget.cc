#include "nas/memory_budget.h"

#include <algorithm>
#include <tuple>

#include "runtime/error.h"

namespace onnas::nas {
namespace {

std::string mib(size_t bytes) { return fmt::format("{:.1f} MiB", double(bytes) / (1024.0 * 1024.0)); }

int64_t recomputed_cells(const SearchSpace& space, const StepConfig& c) { return cell_forwards(space, c) - space.cells; }

}  // namespace

StepEstimate estimate_step(const SearchSpace& space, const SearchOptions& options, const ParamStore& params) {
  CompiledStep step(space, options, params);
  StepEstimate e;
  e.config = options.step;
  e.recomputed_cells = recomputed_cells(space, options.step);
  e.arena_bytes = step.arena_bytes();
  e.handed_bytes = step.handed_bytes();
  e.grad_bytes = step.grad_bytes();
  e.table_bytes = step.table_bytes();
  size_t weights = 0, arch = 0;
  for (const auto& en : params.entries()) {
    if (en->kind == ParamKind::weight) weights += en->tensor.bytes();
    if (en->kind == ParamKind::arch) arch += en->tensor.bytes();
  }
  e.persistent_bytes = weights + 2 * arch + (options.sparse_weight_grads ? e.grad_bytes : weights) +
                       optimizer_state_bytes(params, options);
  return e;
}

std::vector<StepConfig> candidate_configs(const SearchSpace& space, const SearchOptions& options) {
  std::vector<int> splits;
  for (int s = 1; s <= options.batch; ++s)
    if (options.batch % s == 0) splits.push_back(s);
  std::vector<StepConfig> out;
  const int k_grad = options.step.k_grad;
  for (int split : splits) {
    for (Mode m : {Mode::full, Mode::ops, Mode::ops_pairs}) out.push_back({.mode = m, .k_grad = k_grad, .split = split});
    for (SbsVariant v : {SbsVariant::checkpoint, SbsVariant::recompute})
      out.push_back({.mode = Mode::ops_pairs_sbs, .sbs = v, .k_grad = k_grad, .split = split});
  }
  // Micro-batches of one image come last, whatever their speed (StepConfig::one_image_micro_batches).
  auto key = [&](const StepConfig& c) {
    return std::tuple(c.one_image_micro_batches(options.batch), recomputed_cells(space, c), c.split, int(c.mode));
  };
  std::stable_sort(out.begin(), out.end(), [&](const StepConfig& a, const StepConfig& b) { return key(a) < key(b); });
  return out;
}

BudgetChoice choose_step_config(const SearchSpace& space, const SearchOptions& options, size_t budget_bytes,
                                uint64_t seed, size_t shared_arena) {
  BudgetChoice choice;
  ParamStore params;  // weights and alpha/beta once, for every candidate
  params.store_weight_gradients(false);
  init_search_params(params, space, seed);
  // Fastest first; the first that fits is chosen. The smallest is not known in advance
  // (more micro-batches shrink the arena but add step tables), so a refusal names the
  // smallest of all.
  for (const StepConfig& c : candidate_configs(space, options)) {
    SearchOptions o = options;
    o.step = c;
    StepEstimate e = estimate_step(space, o, params);
    if (e.bytes_beside(shared_arena) <= budget_bytes) {
      choice.chosen = e;
      choice.why = fmt::format(
          "{} plans a peak of {} (arena {}{}, persistent {}, step tables {}) within the budget of {}; {} faster "
          "setting(s) did not fit{}",
          c.describe(), mib(e.total_bytes()), mib(e.arena_bytes),
          shared_arena ? fmt::format(", run in the {} arena reserved beside it", mib(shared_arena)) : std::string(),
          mib(e.persistent_bytes), mib(e.table_bytes), mib(budget_bytes), choice.rejected.size(),
          choice.rejected.empty()
              ? std::string()
              : fmt::format(" (the fastest, {}, needs {})", choice.rejected.front().config.describe(),
                            mib(choice.rejected.front().total_bytes())));
      return choice;
    }
    choice.rejected.push_back(e);
  }
  auto smaller = [&](const StepEstimate& a, const StepEstimate& b) {
    return a.bytes_beside(shared_arena) < b.bytes_beside(shared_arena);
  };
  const StepEstimate& least = *std::min_element(choice.rejected.begin(), choice.rejected.end(), smaller);
  fail("no way to run this search step fits in a memory budget of {} ({} bytes): the smallest planned peak is {} "
       "({} bytes, of which {} persistent and {} step tables{}), reached by {}",
       mib(budget_bytes), budget_bytes, mib(least.bytes_beside(shared_arena)), least.bytes_beside(shared_arena),
       mib(least.persistent_bytes), mib(least.table_bytes),
       shared_arena ? fmt::format("; its arena runs in the {} reserved beside it", mib(shared_arena)) : std::string(),
       least.config.flags());
}

}  // namespace onnas::nas
