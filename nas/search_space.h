// The search space of ONNAS.md section 2: candidate op sets, the cell layout (m
// nodes, 2 + j input edges each, pairs of input edges), and the network (stem, n
// cells with reductions, head). Everything here is plain configuration, immutable
// once built; docs/PARAMS.md gives the names and layouts it implies.
//
//   SearchSpace s = SearchSpace::few_shot();      // 7 ops, 3 nodes, 4 cells, C = 16
//   s.channels = 28; s.classes = 5;
//   s.validate();                                  // throws on a shape that cannot flow
//   int E = s.num_edges();                          // 9
//   auto pairs = s.pairs(2);                        // {(0,1),(0,2),(0,3),(1,2),(1,3),(2,3)}
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace onnas::nas {

// The candidate ops, from nas/candidate_ops.inc.
enum class OpKind {
#define ONNAS_CANDIDATE(kind, name, relu) kind,
#include "nas/candidate_ops.inc"
#undef ONNAS_CANDIDATE
};
inline constexpr int kNumOpKinds = 0
#define ONNAS_CANDIDATE(kind, name, relu) +1
#include "nas/candidate_ops.inc"
#undef ONNAS_CANDIDATE
    ;
const char* op_kind_name(OpKind k);
// Throws onnas::Error naming the unknown op and the known ones.
OpKind op_kind_from_name(const std::string& name);

std::vector<OpKind> few_shot_ops();  // the paper's 7-op set (default)
std::vector<OpKind> darts_ops();     // the DARTS 8-op set (with none)

struct SearchSpace {
  std::vector<OpKind> ops = few_shot_ops();
  int nodes = 3;                  // m intermediate nodes per cell
  int cells = 4;                  // n
  std::vector<int> reductions = {1, 3};
  int channels = 16;              // C of the first cell
  int stem_multiplier = 3;
  int in_channels = 1;
  int height = 28, width = 28;
  int classes = 10;

  static SearchSpace few_shot() { return {}; }

  int num_ops() const { return int(ops.size()); }
  int num_edges() const;                              // sum_j (2 + j)
  int first_edge(int node) const;                     // index of node j's edge from state 0
  std::vector<std::pair<int, int>> pairs(int node) const;  // input-state pairs (a < b), lexicographic
  bool is_reduction(int cell) const;
  int cell_channels(int cell) const;                  // C_i
  // Spatial size of cell i's input s1 (H, W), after the reductions before it.
  std::pair<int, int> cell_input_size(int cell) const;
  // Throws onnas::Error if the configuration is impossible (too small an input for the
  // reductions, odd sizes where a factorized reduce needs even ones, no ops, ...).
  void validate() const;
  std::string describe() const;
  // Every field, for files that must rebuild the space (meta cells, checkpoints).
  nlohmann::json to_json() const;
  // Throws onnas::Error naming `source` and the field that is missing or wrong.
  static SearchSpace from_json(const nlohmann::json& j, const std::string& source);
  bool operator==(const SearchSpace&) const = default;
};

}  // namespace onnas::nas
