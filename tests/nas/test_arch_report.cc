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

}  // namespace

TEST_CASE("decisions: softmax, chosen op and pair, margins, and the genotype's choice") {
  const SearchSpace s = space_of();
  ParamStore params;
  init_search_params(params, s, 1);
  const int64_t k = s.num_ops();
  // Uniform alpha and beta: every op 1/k, every margin 0.
  for (const auto& e : params.entries())
    if (e->kind == ParamKind::arch) e->tensor.zero();
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
