// The samplers of On-NAS (ONNAS.md sections 4 and 5): per step, which ops of each
// edge and which pair of each node receive gradients.
//
// Ops (expectation-based): on every edge the k_grad ops with the largest expected
// final alpha, alpha_now + remaining_steps * mean(last 5 updates of that entry) — where
// each alpha is heading by the end of the search. An entry's history counts only the
// steps in which it got a gradient (an entry left untouched has no update to average);
// an entry with fewer than 5 recorded updates ranks by alpha_now. With probability
// explore_prob per edge, k_grad ops are drawn uniformly instead, among those other
// than the ranking's top-1. Pairs: for each node with more than one pair, one pair
// drawn uniformly. Step t's draws come from a generator seeded by (seed, t), so a
// resumed search draws what the uninterrupted one would. Drawing and recording
// allocate nothing.
//
//   ArchSampler s(space, {.k_grad = 2}, seed);
//   Sample sample = full_sample(space);
//   s.draw(params, step, total_steps, sample);
//   s.before_update(params);  ... architecture step ...  s.after_update(params, trained_normal, trained_reduce);
#pragma once

#include <cstdint>
#include <span>
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

  // Writes step `step`'s sample into `out` (shaped as full_sample(space)).
  void draw(const ParamStore& params, int64_t step, int64_t total_steps, Sample& out);
  Sample draw(const ParamStore& params, int64_t step, int64_t total_steps);
  // Around each architecture update: the difference of each entry that got a gradient
  // (`trained_*`: one flag per alpha entry; empty: every entry) joins its history.
  void before_update(const ParamStore& params);
  void after_update(const ParamStore& params, std::span<const uint8_t> trained_normal = {},
                    std::span<const uint8_t> trained_reduce = {});

  // The ranking score of every alpha entry of one cell type ([E * k], flat).
  std::vector<double> expected_alpha(const ParamStore& params, bool reduction, int64_t remaining_steps) const;
  // The number of updates recorded for entry i (at most `history`).
  int recorded(bool reduction, size_t i) const { return count_[reduction ? 1 : 0][i]; }
  // The k_grad gradient ops of one edge from its scores (no exploration).
  static std::vector<int> top_ops(const double* scores, int k, int k_grad);

  // The history, for checkpoints: [history][E * k] floats, each entry's recorded updates
  // oldest first in its first recorded(i) rows, and the counts.
  std::vector<float> history_rows(bool reduction) const;
  std::vector<float> history_counts(bool reduction) const;
  // Throws onnas::Error if the sizes or counts do not fit this space.
  void set_history(bool reduction, std::span<const float> rows, std::span<const float> counts);

 private:
  void score_into(const ParamStore& params, bool reduction, int64_t remaining, std::vector<double>& score) const;

  SearchSpace space_;
  SamplerOptions options_;
  Rng rng_;
  size_t entries_ = 0;                // E * k
  std::vector<float> before_[2];
  std::vector<float> ring_[2];        // [history][entries]: entry i's updates, slot (next_[i] - 1) newest
  std::vector<int> count_[2], next_[2];
  std::vector<double> score_;         // scratch for draw()
  std::vector<int> order_, others_;   // scratch for draw()
};

}  // namespace onnas::nas
