// What a search has decided, read from alpha and beta: softmax(alpha) of every edge,
// softmax(beta) of every node's input pairs, and for the derived genotype each chosen
// op's and pair's margin over its runner-up (ONNAS.md section 2: the genotype keeps
// the pair with the largest beta and on each kept edge the op with the largest alpha).
// A margin near zero means the search had not decided; uniform alpha over k ops gives
// 1/k to every op.
//
//   nlohmann::json j = arch_snapshot(space, params);   // search_log.jsonl, every N steps
//   std::string t = decision_table(space, params);     // the end of a search, `onnas inspect`
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "nas/search_space.h"
#include "runtime/param_store.h"

namespace onnas::nas {

struct EdgeDecision {
  int node = 0, input = 0;       // the edge input -> node
  OpKind op{}, runner_up{};      // largest and second-largest softmax(alpha), `none` skipped
  float p = 0, runner_up_p = 0;  // their probabilities
};
struct NodeDecision {
  int node = 0;
  std::pair<int, int> pair, runner_up;  // inputs of the pair with the largest and second-largest beta
  float p = 0, runner_up_p = 0;         // softmax(beta) of both (runner_up_p = 0 with one pair)
  EdgeDecision edges[2];
};
struct CellDecisions {
  std::vector<NodeDecision> nodes;
  // Smallest op margin (p - runner_up_p) over the kept edges, and smallest pair margin.
  float min_op_margin() const;
  float min_pair_margin() const;
};

// Throws onnas::Error when alpha/beta are missing or of the wrong shape for `space`.
CellDecisions decide_cell(const SearchSpace& space, const ParamStore& params, bool reduction);

// {"alpha": {"normal": [[p of op 0, ...] per edge], "reduce": ...},
//  "beta": {"normal": [[p of pair 0, ...] per node], "reduce": ...}}: softmax values.
nlohmann::json arch_snapshot(const SearchSpace& space, const ParamStore& params);

// A text table of both cells: node, input, chosen op (p), runner-up (p), margin, and
// the pair's p and margin; ends with the smallest margins and the uniform 1/k.
std::string decision_table(const SearchSpace& space, const ParamStore& params);

// The median, over the kept edges of both cells, of the chosen op's softmax(alpha):
// 1/k for uniform alpha over k ops. Below 2/k (kUndecidedBelow / k) alpha has decided
// little: the genotype is then close to a random pick of the space. (On the glyph
// benchmark a meta cell whose discrete network kept its supernet's accuracy had a
// median near 0.5 with k = 7; undecided ones 0.15-0.2.)
float median_chosen_op_p(const SearchSpace& space, const ParamStore& params);
inline constexpr float kUndecidedBelow = 2.0f;
// The warning's text when alpha is undecided (empty when it is not), ending with `hint`.
std::string undecided_warning(const SearchSpace& space, const ParamStore& params, std::string_view hint);

}  // namespace onnas::nas
