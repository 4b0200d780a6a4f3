#include "nas/genotype.h"

#include <fmt/ranges.h>

#include <cctype>

#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/json.h"

namespace onnas::nas {

namespace {

std::string cell_str(const std::vector<std::vector<GenotypeEdge>>& nodes) {
  std::string s = "[";
  bool first = true;
  for (const auto& node : nodes)
    for (const GenotypeEdge& e : node) {
      s += fmt::format("{}('{}', {})", first ? "" : ", ", op_kind_name(e.op), e.input);
      first = false;
    }
  return s + "]";
}

nlohmann::json cell_json(const std::vector<std::vector<GenotypeEdge>>& nodes) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& node : nodes) {
    nlohmann::json n = nlohmann::json::array();
    for (const GenotypeEdge& e : node) n.push_back({{"op", op_kind_name(e.op)}, {"input", e.input}});
    j.push_back(n);
  }
  return j;
}

std::vector<std::vector<GenotypeEdge>> cell_from_json(const nlohmann::json& j, const std::string& source,
                                                      const char* which) {
  if (!j.is_array()) fail("{}: '{}' must be a list of nodes", source, which);
  std::vector<std::vector<GenotypeEdge>> nodes;
  for (size_t n = 0; n < j.size(); ++n) {
    const auto& node = j[n];
    if (!node.is_array() || node.size() != 2)
      fail("{}: {} node {} must be a list of two edges {{\"op\", \"input\"}}", source, which, n);
    std::vector<GenotypeEdge> edges;
    for (size_t k = 0; k < 2; ++k) {
      const auto& e = node[k];
      if (!e.is_object() || !e.contains("op") || !e.contains("input") || !e["op"].is_string() ||
          !e["input"].is_number_integer())
        fail("{}: {} node {} edge {} must be {{\"op\": string, \"input\": integer}}", source, which, n, k);
      OpKind op;
      try {
        op = op_kind_from_name(e["op"].get<std::string>());
      } catch (const Error& err) {
        fail("{}: {} node {} edge {}: {}", source, which, n, k, err.what());
      }
      // Range-checked as a 64-bit value: a narrowing get<int>() would turn 2^32 into 0.
      const auto& input = e["input"];
      if (input.is_number_unsigned() ? input.get<uint64_t>() > uint64_t(n + 1)
                                     : input.get<int64_t>() < 0 || input.get<int64_t>() > int64_t(n + 1))
        fail("{}: {} node {} edge {} takes input {}, but only states 0..{} exist before it", source, which, n, k,
             input.dump(), n + 1);
      edges.push_back({op, int(input.get<int64_t>())});
    }
    // A node sums two different states (the pair with the largest beta, a < b).
    if (edges[0].input == edges[1].input)
      fail("{}: {} node {} takes input {} twice; a node combines two different states", source, which, n,
           edges[0].input);
    nodes.push_back(edges);
  }
  return nodes;
}

}  // namespace

std::string Genotype::str() const {
  // DARTS's cell output concatenates states 2 .. 2 + m - 1, as ours does.
  const size_t m = normal.size();
  return fmt::format("Genotype(normal={}, normal_concat=range(2, {}), reduce={}, reduce_concat=range(2, {}))",
                     cell_str(normal), 2 + m, cell_str(reduce), 2 + m);
}

nlohmann::json Genotype::to_json() const { return {{"normal", cell_json(normal)}, {"reduce", cell_json(reduce)}}; }

Genotype Genotype::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("normal") || !j.contains("reduce"))
    fail("{}: a genotype is an object with 'normal' and 'reduce' lists", source);
  Genotype g;
  g.normal = cell_from_json(j["normal"], source, "normal");
  g.reduce = cell_from_json(j["reduce"], source, "reduce");
  if (g.normal.size() != g.reduce.size())
    fail("{}: normal has {} nodes, reduce has {}", source, g.normal.size(), g.reduce.size());
  return g;
}

Genotype Genotype::parse(std::string_view text, const std::string& source) {
  // {"genotype": {"normal": [[{"op": ..., "input": ...}, {...}], ...], ...}}: five levels.
  nlohmann::json j = parse_json(text, source, {.max_depth = 5, .max_array = 64});
  if (j.is_object() && j.contains("genotype")) j = j["genotype"];
  return from_json(j, source);
}

Genotype Genotype::load(const std::string& path) {
  constexpr size_t kMaxGenotypeBytes = 1u << 20;  // real ones are under a kilobyte
  return parse(read_text_file(path, "genotype file", kMaxGenotypeBytes), path);
}

namespace {

// A reader of the Python literal DARTS prints: identifiers, strings, integers and the
// punctuation around them.
class DartsText {
 public:
  DartsText(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  [[noreturn]] void fail_here(std::string_view expected) const {
    fail("{}: not a DARTS genotype string: expected {} at column {} (like \"Genotype(normal=[('sep_conv_3x3', 0), "
         "...], normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))\")",
         source_, expected, at_ + 1);
  }
  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r'))
      ++at_;
  }
  bool accept(char c) {
    skip_space();
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail_here(fmt::format("'{}'", c));
  }
  std::string identifier() {
    skip_space();
    const size_t from = at_;
    while (at_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[at_])) || text_[at_] == '_')) ++at_;
    if (at_ == from) fail_here("a name");
    return std::string(text_.substr(from, at_ - from));
  }
  std::string quoted() {
    skip_space();
    if (at_ >= text_.size() || (text_[at_] != '\'' && text_[at_] != '"')) fail_here("a quoted op name");
    const char quote = text_[at_++];
    const size_t from = at_;
    while (at_ < text_.size() && text_[at_] != quote) ++at_;
    if (at_ >= text_.size()) fail_here("the closing quote");
    return std::string(text_.substr(from, at_++ - from));
  }
  int64_t integer() {
    skip_space();
    const size_t from = at_;
    if (at_ < text_.size() && text_[at_] == '-') ++at_;
    while (at_ < text_.size() && at_ - from < 10 && std::isdigit(static_cast<unsigned char>(text_[at_]))) ++at_;
    if (at_ == from || (at_ == from + 1 && text_[from] == '-')) fail_here("an integer");
    return std::stoll(std::string(text_.substr(from, at_ - from)));
  }
  bool at_end() {
    skip_space();
    return at_ == text_.size();
  }

 private:
  std::string_view text_;
  const std::string& source_;
  size_t at_ = 0;
};

// [('op', input), ...] -> [[{"op", "input"}, {...}], ...]: two edges per node.
nlohmann::json darts_cell(DartsText& t, const std::string& source, const char* which) {
  nlohmann::json edges = nlohmann::json::array();
  t.expect('[');
  if (!t.accept(']')) {
    do {
      t.expect('(');
      std::string op = t.quoted();
      t.expect(',');
      const int64_t input = t.integer();
      t.expect(')');
      edges.push_back({{"op", op}, {"input", input}});
    } while (t.accept(','));
    t.expect(']');
  }
  if (edges.size() % 2 != 0)
    fail("{}: {} lists {} edges; a DARTS genotype has two per node", source, which, edges.size());
  nlohmann::json nodes = nlohmann::json::array();
  for (size_t i = 0; i < edges.size(); i += 2) nodes.push_back({edges[i], edges[i + 1]});
  return nodes;
}

// range(a, b) or [a, ...]: the states a cell concatenates.
std::vector<int64_t> darts_concat(DartsText& t) {
  std::vector<int64_t> states;
  if (t.accept('[')) {
    if (!t.accept(']')) {
      do states.push_back(t.integer());
      while (t.accept(','));
      t.expect(']');
    }
    return states;
  }
  if (t.identifier() != "range") t.fail_here("range(a, b) or a list");
  t.expect('(');
  const int64_t from = t.integer();
  t.expect(',');
  const int64_t to = t.integer();
  t.expect(')');
  for (int64_t s = from; s < to && states.size() < 64; ++s) states.push_back(s);
  return states;
}

}  // namespace

Genotype Genotype::parse_darts(std::string_view text, const std::string& source) {
  constexpr size_t kMaxDartsBytes = 1u << 16;  // real ones are a few hundred bytes
  if (text.size() > kMaxDartsBytes)
    fail("{}: a DARTS genotype string of {} bytes (at most {})", source, text.size(), kMaxDartsBytes);
  DartsText t(text, source);
  if (t.identifier() != "Genotype") t.fail_here("Genotype(");
  t.expect('(');
  nlohmann::json j = nlohmann::json::object();
  std::vector<int64_t> concat[2];
  bool has_concat[2] = {false, false};
  do {
    const std::string field = t.identifier();
    t.expect('=');
    if (field == "normal" || field == "reduce") {
      if (j.contains(field)) fail("{}: '{}' is given twice", source, field);
      j[field] = darts_cell(t, source, field.c_str());
    } else if (field == "normal_concat" || field == "reduce_concat") {
      const int k = field == "reduce_concat";
      concat[k] = darts_concat(t);
      has_concat[k] = true;
    } else {
      fail("{}: a DARTS genotype has the fields normal, normal_concat, reduce, reduce_concat; not '{}'", source, field);
    }
  } while (t.accept(','));
  t.expect(')');
  if (!t.at_end()) t.fail_here("the end of the text");
  Genotype g = from_json(j, source);
  for (int k = 0; k < 2; ++k) {
    if (!has_concat[k]) continue;
    std::vector<int64_t> all;
    for (size_t s = 0; s < g.normal.size(); ++s) all.push_back(int64_t(2 + s));
    if (concat[k] != all)
      fail("{}: {} is [{}]; onnas concatenates every intermediate node, range(2, {})", source,
           k ? "reduce_concat" : "normal_concat", fmt::join(concat[k], ", "), 2 + g.normal.size());
  }
  return g;
}

void Genotype::save(const std::string& path) const { write_file_atomic(path, to_json().dump(2) + "\n"); }

void Genotype::validate(const SearchSpace& space, const std::string& source) const {
  for (const auto* cell : {&normal, &reduce}) {
    if (int(cell->size()) != space.nodes)
      fail("{}: the genotype has {} nodes per cell, the search space {}", source, cell->size(), space.nodes);
    for (size_t n = 0; n < cell->size(); ++n) {
      if ((*cell)[n].size() != 2) fail("{}: node {} must have two edges", source, n);
      for (const GenotypeEdge& e : (*cell)[n])
        if (e.input < 0 || e.input >= int(2 + n))
          fail("{}: node {} takes input {}, but only states 0..{} exist before it", source, n, e.input, 1 + n);
    }
  }
}

Genotype derive_genotype(const SearchSpace& space, const ParamStore& params) {
  Genotype g;
  for (bool reduction : {false, true}) {
    const std::string kind = reduction ? "reduce" : "normal";
    Tensor alpha = params.get("alpha." + kind);
    const int64_t k = space.num_ops();
    if (alpha.shape() != Shape{space.num_edges(), k})
      fail("alpha.{} has shape {}, the search space needs [{}, {}]", kind, alpha.shape().str(), space.num_edges(), k);
    auto& cell = reduction ? g.reduce : g.normal;
    for (int j = 0; j < space.nodes; ++j) {
      Tensor beta = params.get(fmt::format("beta.{}.{}", kind, j));
      const auto pairs = space.pairs(j);
      if (beta.numel() != int64_t(pairs.size()))
        fail("beta.{}.{} has {} entries, node {} has {} pairs", kind, j, beta.numel(), j, pairs.size());
      size_t best = 0;
      for (size_t p = 1; p < pairs.size(); ++p)
        if (beta.f32()[p] > beta.f32()[best]) best = p;
      std::vector<GenotypeEdge> edges;
      for (int a : {pairs[best].first, pairs[best].second}) {
        const int e = space.first_edge(j) + a;
        int best_op = -1;
        for (int64_t o = 0; o < k; ++o) {
          if (space.ops[size_t(o)] == OpKind::none) continue;
          if (best_op < 0 || alpha.f32()[e * k + o] > alpha.f32()[e * k + best_op]) best_op = int(o);
        }
        edges.push_back({space.ops[size_t(best_op)], a});
      }
      cell.push_back(edges);
    }
  }
  return g;
}

}  // namespace onnas::nas
