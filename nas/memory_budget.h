// The memory-budget chooser: of the ways to run a search step (memory mode, SBS
// variant, micro-batches), pick the fastest whose planned total peak fits a byte
// budget, or refuse before anything runs.
//
// Total peak = persistent bytes (weights, the gradients of the sampled weights,
// optimizer state, alpha/beta) + the arena (the largest program's plan) + SBS side
// storage; all planned, none measured. Samples differ a little in size, so each candidate is planned on a few
// samples and the largest is used.
//
// "Fastest" ranks by recomputed forward work first (0 for one-shot modes, n - 1
// cells for SBS checkpoint, n(n - 1)/2 for SBS recompute), then by fewer
// micro-batches (small chunks run slower kernels), then by how close the mode is to
// the exact DARTS step (full, ops, ops+pairs, ops+pairs+sbs).
//
//   BudgetChoice c = choose_step_config(space, options, budget_bytes, seed);
//   options.step = c.chosen.config;   // throws onnas::Error if nothing fits
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nas/search.h"

namespace onnas::nas {

struct StepEstimate {
  StepConfig config;
  size_t arena_bytes = 0, side_bytes = 0, persistent_bytes = 0;
  int64_t recomputed_cells = 0;  // per chunk
  size_t total_bytes() const { return arena_bytes + side_bytes + persistent_bytes; }
};

// Plans one configuration (weight and architecture passes, on the first `samples`
// samples a Searcher with this seed would draw).
StepEstimate estimate_step(const SearchSpace& space, const SearchOptions& options, uint64_t seed, int samples = 3);

// Every configuration the chooser considers, fastest first: the four modes, both
// SBS variants, and every split that divides the batch (k_grad from options.step).
std::vector<StepConfig> candidate_configs(const SearchSpace& space, const SearchOptions& options);

struct BudgetChoice {
  StepEstimate chosen;
  std::vector<StepEstimate> rejected;  // faster candidates that did not fit
  std::string why;                     // one paragraph for the user
};
// Throws onnas::Error, naming the smallest achievable peak and the setting that
// reaches it, if no candidate fits.
BudgetChoice choose_step_config(const SearchSpace& space, const SearchOptions& options, size_t budget_bytes,
                                uint64_t seed);

}  // namespace onnas::nas
