// The memory-budget chooser: of the ways to run a search step (memory mode, SBS
// variant, micro-batches), pick the fastest whose planned total peak fits a byte
// budget, or refuse before anything runs.
//
// Total peak = persistent bytes (weights, alpha/beta, optimizer state, the gradient
// block sized for the worst sample) + the arena (both passes' schedules, planned for
// every admissible sample: activations, kept values, values handed between SBS
// phases, workspaces). Exact: the plan of the compiled step, which every step keeps to.
//
// "Fastest" ranks by recomputed forward work first (0 for one-shot modes, n - 1
// cells for SBS checkpoint, n(n - 1)/2 for SBS recompute), then by fewer
// micro-batches (small chunks run slower kernels), then by how close the mode is to
// the exact DARTS step (full, ops, ops+pairs, ops+pairs+sbs).
//
//   BudgetChoice c = choose_step_config(space, options, budget_bytes, seed);
//   options.step = c.chosen.config;   // throws onnas::Error if nothing fits
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "nas/search.h"

namespace onnas::nas {

struct StepEstimate {
  StepConfig config;
  size_t arena_bytes = 0;       // the plan both passes run in
  size_t handed_bytes = 0;      // of the arena: values handed between SBS phases
  size_t grad_bytes = 0;        // the weight-gradient block (in persistent_bytes)
  size_t persistent_bytes = 0;  // weights, alpha/beta and their gradients, optimizer state
  size_t table_bytes = 0;       // the compiled step's tables (heap, once planning data is freed)
  int64_t recomputed_cells = 0;  // per chunk
  // What the step holds while it runs: arena, persistent tensors and the step tables.
  size_t total_bytes() const { return arena_bytes + persistent_bytes + table_bytes; }
  // What it adds beside an arena of `shared_arena` bytes that exists anyway and that the
  // step runs in (adapt: the discrete network's fine-tuning runs in the same arena).
  size_t bytes_beside(size_t shared_arena) const {
    return std::max(arena_bytes, shared_arena) - shared_arena + persistent_bytes + table_bytes;
  }
};

// Plans one configuration. `params`: the supernet's weights and alpha/beta (their
// values do not matter; init_search_params makes them).
StepEstimate estimate_step(const SearchSpace& space, const SearchOptions& options, const ParamStore& params);

// Every configuration the chooser considers, fastest first: the four modes, both
// SBS variants, and every split that divides the batch (k_grad from options.step).
std::vector<StepConfig> candidate_configs(const SearchSpace& space, const SearchOptions& options);

struct BudgetChoice {
  StepEstimate chosen;
  std::vector<StepEstimate> rejected;  // faster candidates that did not fit
  std::string why;                     // one paragraph for the user
};
// Throws onnas::Error, naming the smallest achievable peak and the setting that
// reaches it, if no candidate fits. `shared_arena`: an arena that exists beside the
// budget anyway and that the step may run in (StepEstimate::bytes_beside).
BudgetChoice choose_step_config(const SearchSpace& space, const SearchOptions& options, size_t budget_bytes,
                                uint64_t seed, size_t shared_arena = 0);

}  // namespace onnas::nas
