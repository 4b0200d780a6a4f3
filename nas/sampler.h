// The samplers of On-NAS (ONNAS.md sections 4 and 5): per step, which ops of each
// edge and which pair of each node receive gradients.
//
// Ops (expectation-based): on every edge the k_grad ops with the largest expected
// final alpha, alpha_now + remaining_steps * mean(last 5 alpha updates) — where each
// alpha is heading by the end of the search — ranked by alpha_now until 5 updates
// exist. With probability explore_prob per edge, k_grad ops are drawn uniformly
// instead, among those other than the ranking's top-1. Pairs: for each node with
// more than one pair, one pair drawn uniformly. Step t's draws come from a generator
// seeded by (seed, t), so a resumed search draws what the uninterrupted one would.
//
//   ArchSampler s(space, {.k_grad = 2}, seed);
//   Sample sample = s.draw(params, step, total_steps);
//   s.before_update(params);  ... architecture step ...  s.after_update(params);
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "nas/network.h"
#include "nas/search_space.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"

namespace onnas::nas {

struct SamplerOptions {
  bool sample_ops = true;
  bool sample_pairs = true;
  int k_grad = 2;
  double explore_prob = 0.2;
  int history = 5;  // alpha updates averaged for the expectation
};

class ArchSampler {
 public:
  ArchSampler(const SearchSpace& space, SamplerOptions options, uint64_t seed);

  Sample draw(const ParamStore& params, int64_t step, int64_t total_steps);
  // Around each architecture update: the difference is kept as one delta.
  void before_update(const ParamStore& params);
  void after_update(const ParamStore& params);

  // The ranking score of every alpha entry of one cell type ([E * k], flat).
  std::vector<double> expected_alpha(const ParamStore& params, bool reduction, int64_t remaining_steps) const;
  size_t deltas_recorded() const { return deltas_[0].size(); }
  // The k_grad gradient ops of one edge from its scores (no exploration).
  static std::vector<int> top_ops(const double* scores, int k, int k_grad);
  // The alpha history (oldest first), for checkpoints.
  const std::deque<std::vector<float>>& history(bool reduction) const { return deltas_[reduction ? 1 : 0]; }
  void set_history(bool reduction, std::deque<std::vector<float>> deltas);

 private:
  std::vector<float> alpha_of(const ParamStore& params, bool reduction) const;

  SearchSpace space_;
  SamplerOptions options_;
  Rng rng_;
  std::vector<float> before_[2];
  std::deque<std::vector<float>> deltas_[2];  // newest last
};

}  // namespace onnas::nas
