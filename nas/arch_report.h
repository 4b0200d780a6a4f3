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

// When each edge's op became its argmax, read from a search's arch records in step
// order (arch_snapshot's JSON: the search's, or the lines of search_log.jsonl on
// --resume). A softmax can be peaked and still change its argmax from record to record:
// the choice is then the noise of the last batches as much as a decision, which the
// margins alone do not show.
//
//   ChoiceHistory h(space);
//   h.observe(record["arch"], step);                          // every record of the run
//   Settling s = settling(space, params, h, total * 3 / 4);   // kept edges changed late
class ChoiceHistory {
 public:
  explicit ChoiceHistory(const SearchSpace& space);
  // Throws onnas::Error when `snapshot` is not arch_snapshot's shape for the space.
  void observe(const nlohmann::json& snapshot, int64_t step);
  // The step of the first record (-1 before any).
  int64_t first_step() const { return first_step_; }
  // The step since which edge `edge` of the cell has had its current argmax (-1 unseen).
  int64_t since(bool reduction, int edge) const { return since_[reduction][size_t(edge)]; }

 private:
  std::vector<OpKind> ops_;
  int64_t first_step_ = -1;
  std::vector<int> argmax_[2];
  std::vector<int64_t> since_[2];
};

// The genotype's kept edges (both cells) and how many of them got their op at or after
// step `late_from`.
struct Settling {
  int kept = 0, changed_late = 0;
};
Settling settling(const SearchSpace& space, const ParamStore& params, const ChoiceHistory& history, int64_t late_from);
// At or above this fraction of kept edges changed late, alpha is unsettled.
inline constexpr double kUnsettledFrom = 0.5;

}  // namespace onnas::nas
