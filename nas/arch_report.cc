// nas/: reads alpha/beta into decisions and tables (arch_report.h).
#include "nas/arch_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace onnas::nas {
namespace {

std::vector<float> softmax(const float* x, int64_t n) {
  std::vector<float> p(static_cast<size_t>(n));
  if (n == 0) return p;
  const float m = *std::max_element(x, x + n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[size_t(i)] = std::exp(x[i] - m);
  for (float& v : p) v = float(v / s);
  return p;
}

Tensor alpha_of(const SearchSpace& space, const ParamStore& params, const std::string& kind) {
  Tensor a = params.get("alpha." + kind);
  if (a.shape() != Shape{space.num_edges(), space.num_ops()})
    fail("alpha.{} has shape {}, the search space needs [{}, {}]", kind, a.shape().str(), space.num_edges(),
         space.num_ops());
  return a;
}

Tensor beta_of(const SearchSpace& space, const ParamStore& params, const std::string& kind, int node) {
  Tensor b = params.get(fmt::format("beta.{}.{}", kind, node));
  if (b.numel() != int64_t(space.pairs(node).size()))
    fail("beta.{}.{} has {} entries, node {} has {} pairs", kind, node, b.numel(), node, space.pairs(node).size());
  return b;
}

// The two largest of p (indices), skipping `none` ops when `ops` is given.
std::pair<int, int> top_two(const std::vector<float>& p, const std::vector<OpKind>* ops) {
  int best = -1, second = -1;
  for (int i = 0; i < int(p.size()); ++i) {
    if (ops && (*ops)[size_t(i)] == OpKind::none) continue;
    if (best < 0 || p[size_t(i)] > p[size_t(best)]) second = best, best = i;
    else if (second < 0 || p[size_t(i)] > p[size_t(second)]) second = i;
  }
  return {best, second};
}

}  // namespace

float CellDecisions::min_op_margin() const {
  float m = 1;
  for (const NodeDecision& n : nodes)
    for (const EdgeDecision& e : n.edges) m = std::min(m, e.p - e.runner_up_p);
  return m;
}

float CellDecisions::min_pair_margin() const {
  float m = 1;
  for (const NodeDecision& n : nodes) m = std::min(m, n.p - n.runner_up_p);
  return m;
}

CellDecisions decide_cell(const SearchSpace& space, const ParamStore& params, bool reduction) {
  const std::string kind = reduction ? "reduce" : "normal";
  const Tensor alpha = alpha_of(space, params, kind);
  const int64_t k = space.num_ops();
  CellDecisions c;
  for (int j = 0; j < space.nodes; ++j) {
    const Tensor beta = beta_of(space, params, kind, j);
    const auto pairs = space.pairs(j);
    const std::vector<float> pb = softmax(beta.f32(), beta.numel());
    const auto [best, second] = top_two(pb, nullptr);
    NodeDecision n;
    n.node = j;
    n.pair = pairs[size_t(best)];
    n.p = pb[size_t(best)];
    if (second >= 0) n.runner_up = pairs[size_t(second)], n.runner_up_p = pb[size_t(second)];
    int slot = 0;
    for (int input : {n.pair.first, n.pair.second}) {
      const int e = space.first_edge(j) + input;
      const std::vector<float> pa = softmax(alpha.f32() + e * k, k);
      const auto [op, op2] = top_two(pa, &space.ops);
      EdgeDecision& d = n.edges[slot++];
      d.node = j;
      d.input = input;
      d.op = space.ops[size_t(op)];
      d.p = pa[size_t(op)];
      if (op2 >= 0) d.runner_up = space.ops[size_t(op2)], d.runner_up_p = pa[size_t(op2)];
    }
    c.nodes.push_back(n);
  }
  return c;
}

nlohmann::json arch_snapshot(const SearchSpace& space, const ParamStore& params) {
  nlohmann::json alpha = nlohmann::json::object(), beta = nlohmann::json::object();
  auto rounded = [](float v) { return std::round(double(v) * 1e5) / 1e5; };
  for (bool reduction : {false, true}) {
    const std::string kind = reduction ? "reduce" : "normal";
    const Tensor a = alpha_of(space, params, kind);
    nlohmann::json edges = nlohmann::json::array();
    for (int e = 0; e < space.num_edges(); ++e) {
      nlohmann::json row = nlohmann::json::array();
      for (float v : softmax(a.f32() + e * space.num_ops(), space.num_ops())) row.push_back(rounded(v));
      edges.push_back(row);
    }
    alpha[kind] = edges;
    nlohmann::json nodes = nlohmann::json::array();
    for (int j = 0; j < space.nodes; ++j) {
      const Tensor b = beta_of(space, params, kind, j);
      nlohmann::json row = nlohmann::json::array();
      for (float v : softmax(b.f32(), b.numel())) row.push_back(rounded(v));
      nodes.push_back(row);
    }
    beta[kind] = nodes;
  }
  return {{"alpha", alpha}, {"beta", beta}};
}

float median_chosen_op_p(const SearchSpace& space, const ParamStore& params) {
  std::vector<float> p;
  for (bool reduction : {false, true})
    for (const NodeDecision& n : decide_cell(space, params, reduction).nodes)
      for (const EdgeDecision& e : n.edges) p.push_back(e.p);
  if (p.empty()) return 0.0f;
  std::sort(p.begin(), p.end());
  const size_t m = p.size() / 2;
  return p.size() % 2 ? p[m] : 0.5f * (p[m - 1] + p[m]);
}

std::string undecided_warning(const SearchSpace& space, const ParamStore& params, std::string_view hint) {
  const float median = median_chosen_op_p(space, params), uniform = 1.0f / float(space.num_ops());
  if (median >= kUndecidedBelow * uniform) return "";
  return fmt::format(
      "alpha is undecided: the kept edges' chosen ops have a median softmax of {:.3f} (uniform {:.3f}, decided from "
      "{:.3f}), so the genotype is close to a random pick of the space; {}",
      median, uniform, kUndecidedBelow * uniform, hint);
}

ChoiceHistory::ChoiceHistory(const SearchSpace& space) : ops_(space.ops) {
  for (auto& a : argmax_) a.assign(size_t(space.num_edges()), -1);
  for (auto& s : since_) s.assign(size_t(space.num_edges()), -1);
}

void ChoiceHistory::observe(const nlohmann::json& snapshot, int64_t step) {
  const int64_t k = int64_t(ops_.size());
  for (bool reduction : {false, true}) {
    const char* kind = reduction ? "reduce" : "normal";
    const nlohmann::json* rows = nullptr;
    if (snapshot.is_object() && snapshot.contains("alpha") && snapshot["alpha"].is_object() &&
        snapshot["alpha"].contains(kind))
      rows = &snapshot["alpha"][kind];
    if (!rows || !rows->is_array() || rows->size() != argmax_[reduction].size())
      fail("the arch record of step {} has no alpha.{} of {} edges", step, kind, argmax_[reduction].size());
    for (size_t e = 0; e < rows->size(); ++e) {
      const nlohmann::json& row = (*rows)[e];
      if (!row.is_array() || int64_t(row.size()) != k)
        fail("the arch record of step {}: alpha.{} edge {} has not {} probabilities", step, kind, e, k);
      std::vector<float> p;
      for (const nlohmann::json& v : row) {
        if (!v.is_number()) fail("the arch record of step {}: alpha.{} edge {} holds a non-number", step, kind, e);
        p.push_back(v.get<float>());
      }
      const int best = top_two(p, &ops_).first;
      if (best != argmax_[reduction][e]) argmax_[reduction][e] = best, since_[reduction][e] = step;
    }
  }
  if (first_step_ < 0) first_step_ = step;
}

Settling settling(const SearchSpace& space, const ParamStore& params, const ChoiceHistory& history, int64_t late_from) {
  Settling s;
  for (bool reduction : {false, true})
    for (const NodeDecision& n : decide_cell(space, params, reduction).nodes)
      for (const EdgeDecision& e : n.edges) {
        ++s.kept;
        const int64_t since = history.since(reduction, space.first_edge(n.node) + e.input);
        if (since < 0 || since >= late_from) ++s.changed_late;
      }
  return s;
}

std::string decision_table(const SearchSpace& space, const ParamStore& params) {
  std::string out = fmt::format("{:<7} {:>4} {:>5}  {:<14} {:>6}  {:<14} {:>6} {:>7}   {:>7} {:>7}\n", "cell", "node",
                                "input", "op", "p", "runner-up", "p", "margin", "pair p", "margin");
  float min_op = 1, min_pair = 1;
  for (bool reduction : {false, true}) {
    const CellDecisions c = decide_cell(space, params, reduction);
    min_op = std::min(min_op, c.min_op_margin());
    min_pair = std::min(min_pair, c.min_pair_margin());
    for (const NodeDecision& n : c.nodes)
      for (int s = 0; s < 2; ++s) {
        const EdgeDecision& e = n.edges[s];
        out += fmt::format("{:<7} {:>4} {:>5}  {:<14} {:>6.3f}  {:<14} {:>6.3f} {:>7.3f}", reduction ? "reduce" : "normal",
                           n.node, e.input, op_kind_name(e.op), e.p, op_kind_name(e.runner_up), e.runner_up_p,
                           e.p - e.runner_up_p);
        out += s == 0 ? fmt::format("   {:>7.3f} {:>7.3f}\n", n.p, n.p - n.runner_up_p) : std::string("\n");
      }
  }
  out += fmt::format("smallest margins: op {:.3f}, pair {:.3f} (uniform alpha gives every op {:.3f})\n", min_op,
                     min_pair, 1.0 / double(space.num_ops()));
  return out;
}

}  // namespace onnas::nas
