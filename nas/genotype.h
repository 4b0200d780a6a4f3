// Genotype: the architecture a search finds — for each node of the normal and the
// reduction cell, two input states with one op each (ONNAS.md section 2: the pair
// with the largest beta, and on each kept edge the op with the largest alpha).
//
//   Genotype g = derive_genotype(space, params);
//   std::string s = g.str();       // as DARTS prints it: "Genotype(normal=[('sep_conv_3x3', 1), ...],
//                                  //   normal_concat=range(2, 5), reduce=[...], reduce_concat=range(2, 5))"
//   nlohmann::json j = g.to_json(); Genotype h = Genotype::from_json(j, "file.json");
//   Genotype d = Genotype::parse_darts(s, "--genotype");   // the string back (or one DARTS printed)
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "nas/search_space.h"
#include "runtime/param_store.h"

namespace onnas::nas {

struct GenotypeEdge {
  OpKind op;
  int input;  // state index: 0 = s0, 1 = s1, 2 + t = node t
  bool operator==(const GenotypeEdge&) const = default;
};

struct Genotype {
  std::vector<std::vector<GenotypeEdge>> normal;  // [node][2]
  std::vector<std::vector<GenotypeEdge>> reduce;

  const std::vector<std::vector<GenotypeEdge>>& of(bool reduction) const { return reduction ? reduce : normal; }
  std::string str() const;
  nlohmann::json to_json() const;
  // Throws onnas::Error naming `source` and what is wrong (unknown op, input out of range, ...).
  static Genotype from_json(const nlohmann::json& j, const std::string& source);
  // JSON text: a genotype object, or an object holding one under "genotype".
  static Genotype parse(std::string_view text, const std::string& source);
  static Genotype load(const std::string& path);
  // A genotype as the DARTS repositories print it (str() above): the namedtuple's four
  // fields in any order, quotes ' or ", *_concat as range(a, b) or a list. onnas
  // concatenates every intermediate node, so a concat that leaves one out is refused,
  // as is anything from_json refuses (unknown op, input out of range, ...). Throws
  // onnas::Error naming `source` and the column where the text stops making sense.
  static Genotype parse_darts(std::string_view text, const std::string& source);
  void save(const std::string& path) const;  // atomic
  // Checks the genotype against a space (node count, inputs in range, ops in the space).
  void validate(const SearchSpace& space, const std::string& source) const;
  bool operator==(const Genotype&) const = default;
};

// The genotype of the current alpha/beta in `params` (names of docs/PARAMS.md).
// `none` is never chosen as an edge's op.
Genotype derive_genotype(const SearchSpace& space, const ParamStore& params);

}  // namespace onnas::nas
