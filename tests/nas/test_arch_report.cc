// What a search decided (nas/arch_report.h): softmax of alpha and beta, the chosen op
// and pair with their runner-up and margin, agreeing with derive_genotype.
#include <catch2/catch.hpp>

#include <cmath>

#include "nas/arch_report.h"
#include "nas/genotype.h"
#include "nas/network.h"
#include "nas/search_space.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

SearchSpace space_of() {
  SearchSpace s;
  s.channels = 4;
  s.cells = 2;
  s.reductions = {1};
  s.nodes = 2;
  s.height = s.width = 8;
  s.classes = 3;
  return s;
}

// Uniform alpha and beta: every op and pair equally likely.
void zero_arch(ParamStore& params) {
  for (const auto& e : params.entries())
    if (e->kind == ParamKind::arch) e->tensor.zero();
}

}  // namespace

TEST_CASE("decisions: softmax, chosen op and pair, margins, and the genotype's choice") {
  const SearchSpace s = space_of();
  ParamStore params;
  init_search_params(params, s, 1);
  const int64_t k = s.num_ops();
  // Uniform alpha and beta: every op 1/k, every margin 0.
  zero_arch(params);
  CellDecisions uniform = decide_cell(s, params, false);
  CHECK(uniform.min_op_margin() == Approx(0.0f).margin(1e-6));
  CHECK(uniform.nodes[0].edges[0].p == Approx(1.0 / double(k)));

  // Node 1 of the normal cell: pair (0, 2) favoured, on edge 0 -> node 1 op 4 by log 3.
  Tensor alpha = params.get("alpha.normal"), beta = params.get("beta.normal.1");
  const int e = s.first_edge(1) + 0;
  alpha.f32()[e * k + 4] = std::log(3.0f);  // p = 3 / (k - 1 + 3)
  const auto pairs = s.pairs(1);
  size_t wanted = 0;
  for (size_t p = 0; p < pairs.size(); ++p)
    if (pairs[p] == std::pair<int, int>{0, 2}) wanted = p;
  beta.f32()[wanted] = 1.0f;
  CellDecisions c = decide_cell(s, params, false);
  const NodeDecision& n = c.nodes[1];
  CHECK(n.pair == std::pair<int, int>{0, 2});
  const double pb = std::exp(1.0) / (std::exp(1.0) + double(pairs.size() - 1));
  CHECK(n.p == Approx(pb));
  CHECK(n.runner_up_p == Approx(1.0 / (std::exp(1.0) + double(pairs.size() - 1))));
  CHECK(n.edges[0].input == 0);
  CHECK(n.edges[0].op == s.ops[4]);
  CHECK(n.edges[0].p == Approx(3.0 / double(k + 2)));
  CHECK(n.edges[0].p - n.edges[0].runner_up_p == Approx(2.0 / double(k + 2)));
  // The genotype keeps the same pair and op.
  const Genotype g = derive_genotype(s, params);
  CHECK(g.normal[1][0].input == 0);
  CHECK(g.normal[1][0].op == s.ops[4]);
  CHECK(g.normal[1][1].input == 2);

  // The snapshot holds the same softmax; the table names the op and the uniform 1/k.
  const nlohmann::json j = arch_snapshot(s, params);
  CHECK(j["alpha"]["normal"][size_t(e)][4].get<double>() == Approx(3.0 / double(k + 2)).margin(1e-5));
  CHECK(j["beta"]["normal"][1][wanted].get<double>() == Approx(pb).margin(1e-5));
  const std::string table = decision_table(s, params);
  CHECK_THAT(table, Catch::Contains(op_kind_name(s.ops[4])));
  CHECK_THAT(table, Catch::Contains("smallest margins"));
}

TEST_CASE("undecided alpha: the median chosen op's softmax over the kept edges, and the warning below 2/k") {
  const SearchSpace s = space_of();
  ParamStore params;
  init_search_params(params, s, 1);
  zero_arch(params);
  const int64_t k = s.num_ops();
  CHECK(median_chosen_op_p(s, params) == Approx(1.0 / double(k)));
  CHECK_THAT(undecided_warning(s, params, "the hint"),
             Catch::Contains("alpha is undecided") && Catch::Contains("the hint"));
  // Every edge of both cells with one op at p = 0.5: decided, no warning. The kept
  // edges are 4 of the 2 x 3 edges; raise every edge so whichever are kept count.
  for (const char* kind : {"alpha.normal", "alpha.reduce"}) {
    Tensor a = params.get(kind);
    for (int e = 0; e < s.num_edges(); ++e) a.f32()[e * k + 3] = std::log(float(k - 1));  // p = (k-1) / (2k-2)
  }
  CHECK(median_chosen_op_p(s, params) == Approx(0.5));
  CHECK(undecided_warning(s, params, "the hint").empty());
  // The normal cell uniform, the reduction cell decided: the median lies halfway
  // (0.32 with k = 7), over 2/k; with the reduction cell at p = 0.25 it is under.
  Tensor normal = params.get("alpha.normal"), reduce = params.get("alpha.reduce");
  normal.zero();
  CHECK(median_chosen_op_p(s, params) == Approx(0.5 * (0.5 + 1.0 / double(k))));
  CHECK(undecided_warning(s, params, "").empty());
  for (int e = 0; e < s.num_edges(); ++e) reduce.f32()[e * k + 3] = std::log((k - 1) / 3.0f);  // p = 0.25
  CHECK(median_chosen_op_p(s, params) == Approx(0.5 * (0.25 + 1.0 / double(k))));
  CHECK_FALSE(undecided_warning(s, params, "").empty());
}

TEST_CASE("choice history: when each edge's argmax last changed, and the kept edges that changed late") {
  const SearchSpace s = space_of();
  ParamStore params;
  init_search_params(params, s, 1);
  zero_arch(params);
  const int64_t k = s.num_ops();
  Tensor alpha = params.get("alpha.normal");
  // Snapshots whose argmax is op `op` on every edge, except edge `e` of the normal cell at `op_e`.
  auto favour = [&](int op, int e, int op_e) {
    for (int64_t i = 0; i < alpha.numel(); ++i) alpha.f32()[i] = 0;
    for (int edge = 0; edge < s.num_edges(); ++edge) alpha.f32()[edge * k + (edge == e ? op_e : op)] = 1;
    return arch_snapshot(s, params);
  };
  ChoiceHistory h(s);
  CHECK(h.first_step() == -1);
  CHECK(h.since(false, 0) == -1);
  const int e = s.first_edge(1) + 1;  // edge 1 -> node 1
  h.observe(favour(2, e, 2), 10);
  h.observe(favour(2, e, 5), 20);  // edge e changes at 20
  h.observe(favour(2, e, 5), 30);
  h.observe(favour(2, e, 3), 40);  // and again at 40
  CHECK(h.first_step() == 10);
  CHECK(h.since(false, e) == 40);
  CHECK(h.since(false, 0) == 10);
  CHECK(h.since(true, e) == 10);  // the reduction cell's alpha stayed at its start (uniform: op 0)

  // The genotype keeps two edges a node: with alpha as at step 40 and beta favouring the
  // pair (1, 2) of node 1, edge e is kept and got its op at step 40.
  Tensor beta = params.get("beta.normal.1");
  const auto pairs = s.pairs(1);
  for (size_t p = 0; p < pairs.size(); ++p) beta.f32()[p] = pairs[p] == std::pair<int, int>{1, 2} ? 1.0f : 0.0f;
  const Settling late = settling(s, params, h, 35);
  CHECK(late.kept == 2 * 2 * s.nodes);
  CHECK(late.changed_late == 1);
  CHECK(settling(s, params, h, 41).changed_late == 0);
  CHECK(settling(s, params, h, 10).changed_late == late.kept);  // every edge got its op at the first record
  // A record of another space is refused.
  nlohmann::json bad = favour(2, e, 2);
  bad["alpha"]["normal"].erase(0);
  CHECK_THROWS_WITH(h.observe(bad, 50), Catch::Contains("no alpha.normal of"));
}
