// The samplers of ONNAS.md sections 4 and 5: the expectation ranking on hand-made
// alpha histories, exploration that never picks the top-1, one gradient pair per
// node, and draws that depend only on the seed.
#include <catch2/catch.hpp>

#include <set>

#include "nas/sampler.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

ParamStore arch_params(const SearchSpace& s) {
  ParamStore ps;
  for (const char* kind : {"normal", "reduce"}) {
    ps.add_weight(fmt::format("alpha.{}", kind), Shape{s.num_edges(), s.num_ops()}, ParamKind::arch);
    for (int j = 0; j < s.nodes; ++j)
      ps.add_weight(fmt::format("beta.{}.{}", kind, j), Shape{int64_t(s.pairs(j).size())}, ParamKind::arch);
  }
  return ps;
}

int count(const std::vector<uint8_t>& flags) {
  int n = 0;
  for (uint8_t f : flags) n += f;
  return n;
}

}  // namespace

TEST_CASE("top_ops ranks by score, ties by op order") {
  const double scores[] = {0.1, 0.5, -1.0, 0.5, 0.2};
  CHECK(ArchSampler::top_ops(scores, 5, 2) == std::vector<int>{1, 3});
  CHECK(ArchSampler::top_ops(scores, 5, 3) == std::vector<int>{1, 3, 4});
  CHECK(ArchSampler::top_ops(scores, 5, 9) == std::vector<int>{1, 3, 4, 0, 2});
}

TEST_CASE("the expectation ranks by alpha_now until 5 deltas exist, then by where alpha is heading") {
  SearchSpace s;
  ParamStore ps = arch_params(s);
  ArchSampler sampler(s, {.k_grad = 2, .explore_prob = 0.0}, 1);
  Tensor a = ps.get("alpha.normal");
  const int64_t k = s.num_ops();
  // Edge 0: op 0 leads now (1.0), op 3 is steady at 0.95, op 1 is 0.5 and rising by
  // 0.1 per step, op 2 is 0.8 and falling by 0.05.
  a.f32()[0] = 1.0f;
  a.f32()[3] = 0.95f;
  a.f32()[1] = 0.5f;
  a.f32()[2] = 0.8f;
  for (int t = 0; t < 4; ++t) {
    sampler.before_update(ps);
    a.f32()[1] += 0.1f;
    a.f32()[2] -= 0.05f;
    sampler.after_update(ps);
  }
  // Four deltas: still alpha_now (op 0 1.0, op 3 0.95, op 1 0.9) -> ops 0 and 3.
  CHECK(sampler.recorded(false, 1) == 4);
  Sample early = sampler.draw(ps, 4, 100);
  CHECK(early.normal.grad_ops[0] == std::vector<uint8_t>{1, 0, 0, 1, 0, 0, 0});
  sampler.before_update(ps);
  a.f32()[1] += 0.1f;
  a.f32()[2] -= 0.05f;
  sampler.after_update(ps);
  CHECK(sampler.recorded(false, 1) == 5);
  // Expected final alpha with 10 steps left: op 0 1.0, op 1 1.0 + 10 * 0.1 = 2.0,
  // op 2 0.55 - 10 * 0.05 = 0.05, op 3 0.95 -> ops 1 and 0, where alpha_now says 0 and 3.
  std::vector<double> e = sampler.expected_alpha(ps, false, 10);
  CHECK(e[1] == Approx(2.0).epsilon(1e-5));
  CHECK(e[2] == Approx(0.05).margin(1e-5));
  CHECK(e[size_t(k)] == 0.0);  // edge 1 never moved
  Sample late = sampler.draw(ps, 90, 100);
  CHECK(late.normal.grad_ops[0] == std::vector<uint8_t>{1, 1, 0, 0, 0, 0, 0});
  // Ranking the (other) reduction alpha is untouched by the normal one's history.
  CHECK(late.reduce.grad_ops[0] == std::vector<uint8_t>{1, 1, 0, 0, 0, 0, 0});
  // Only the last 5 deltas are kept:
  for (int t = 0; t < 3; ++t) {
    sampler.before_update(ps);
    sampler.after_update(ps);
  }
  CHECK(sampler.recorded(false, 1) == 5);
  // the three zero deltas now dilute the mean: op 1's mean delta is 0.2 / 5 = 0.04.
  e = sampler.expected_alpha(ps, false, 10);
  CHECK(e[1] == Approx(1.0 + 0.4).epsilon(1e-5));
}

TEST_CASE("an entry's history counts only the steps in which it got a gradient") {
  SearchSpace s;
  ParamStore ps = arch_params(s);
  ArchSampler sampler(s, {.k_grad = 2, .explore_prob = 0.0}, 1);
  Tensor a = ps.get("alpha.normal");
  const size_t n = size_t(a.numel());
  std::vector<uint8_t> trained(n, 0), all(n, 1);
  trained[1] = 1;  // entry 1 trained every step, entry 2 only every other step
  for (int t = 0; t < 10; ++t) {
    trained[2] = t % 2;
    sampler.before_update(ps);
    a.f32()[1] += 0.1f;
    if (t % 2) a.f32()[2] -= 0.2f;  // an optimizer moves only what got a gradient
    sampler.after_update(ps, trained, all);
  }
  CHECK(sampler.recorded(false, 1) == 5);  // at most the history's length
  CHECK(sampler.recorded(false, 2) == 5);  // five steps with a gradient, no zero deltas between them
  CHECK(sampler.recorded(false, 3) == 0);  // never trained: ranks by alpha_now
  const std::vector<double> e = sampler.expected_alpha(ps, false, 10);
  CHECK(e[1] == Approx(a.f32()[1] + 10 * 0.1).epsilon(1e-5));
  CHECK(e[2] == Approx(a.f32()[2] - 10 * 0.2).epsilon(1e-5));  // not diluted by the untrained steps
  CHECK(e[3] == Approx(a.f32()[3]));
  CHECK(sampler.recorded(true, 0) == 5);  // the reduction cell: every entry trained
}

TEST_CASE("every edge gets k_grad ops, exploration never picks the current top-1") {
  SearchSpace s;
  ParamStore ps = arch_params(s);
  Tensor a = ps.get("alpha.reduce");
  Rng init(5);
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] = init.normal();
  const int64_t k = s.num_ops();
  for (int k_grad : {1, 2, 3}) {
    ArchSampler sampler(s, {.k_grad = k_grad, .explore_prob = 1.0}, 9);
    for (int t = 0; t < 50; ++t) {
      Sample smp = sampler.draw(ps, t, 50);
      for (int e = 0; e < s.num_edges(); ++e) {
        const auto& flags = smp.reduce.grad_ops[size_t(e)];
        REQUIRE(count(flags) == k_grad);
        std::vector<double> row(a.f32() + e * k, a.f32() + (e + 1) * k);
        const int top = ArchSampler::top_ops(row.data(), int(k), 1)[0];
        CHECK(flags[size_t(top)] == 0);
      }
    }
  }
  // Without exploration the top-1 is always chosen.
  ArchSampler greedy(s, {.k_grad = 2, .explore_prob = 0.0}, 9);
  Sample smp = greedy.draw(ps, 0, 10);
  for (int e = 0; e < s.num_edges(); ++e) {
    std::vector<double> row(a.f32() + e * k, a.f32() + (e + 1) * k);
    for (int o : ArchSampler::top_ops(row.data(), int(k), 2)) CHECK(smp.reduce.grad_ops[size_t(e)][size_t(o)] == 1);
  }
}

TEST_CASE("exploration happens on about explore_prob of the edges") {
  SearchSpace s;
  ParamStore ps = arch_params(s);
  Tensor a = ps.get("alpha.normal");
  Rng init(6);
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] = init.normal();
  const int64_t k = s.num_ops();
  ArchSampler sampler(s, {.k_grad = 2, .explore_prob = 0.2}, 3);
  int explored = 0, total = 0;
  for (int t = 0; t < 400; ++t) {
    Sample smp = sampler.draw(ps, t, 400);
    for (int e = 0; e < s.num_edges(); ++e) {
      std::vector<double> row(a.f32() + e * k, a.f32() + (e + 1) * k);
      explored += smp.normal.grad_ops[size_t(e)][size_t(ArchSampler::top_ops(row.data(), int(k), 1)[0])] == 0;
      total++;
    }
  }
  const double rate = double(explored) / total;
  CHECK(rate > 0.17);
  CHECK(rate < 0.23);
}

TEST_CASE("pairs: one uniformly drawn gradient pair per node with more than one pair") {
  SearchSpace s;
  ParamStore ps = arch_params(s);
  ArchSampler sampler(s, {.sample_ops = false}, 11);
  std::vector<std::set<int>> seen(size_t(s.nodes));
  for (int t = 0; t < 200; ++t) {
    Sample smp = sampler.draw(ps, t, 200);
    CHECK(smp.normal.grad_ops == full_sample(s).normal.grad_ops);
    for (int j = 0; j < s.nodes; ++j) {
      const int p = smp.normal.grad_pair[size_t(j)];
      if (s.pairs(j).size() == 1) {
        CHECK(p == -1);
      } else {
        REQUIRE(p >= 0);
        REQUIRE(p < int(s.pairs(j).size()));
        seen[size_t(j)].insert(p);
      }
    }
  }
  CHECK(seen[1].size() == 3);
  CHECK(seen[2].size() == 6);
}

TEST_CASE("draws depend only on the seed") {
  SearchSpace s;
  ParamStore ps = arch_params(s);
  ArchSampler a(s, {}, 21), b(s, {}, 21), c(s, {}, 22);
  bool differs = false;
  for (int t = 0; t < 20; ++t) {
    Sample sa = a.draw(ps, t, 20), sb = b.draw(ps, t, 20), sc = c.draw(ps, t, 20);
    CHECK(sa.normal.grad_ops == sb.normal.grad_ops);
    CHECK(sa.reduce.grad_pair == sb.reduce.grad_pair);
    differs = differs || sa.normal.grad_ops != sc.normal.grad_ops || sa.normal.grad_pair != sc.normal.grad_pair;
  }
  CHECK(differs);
}

TEST_CASE("sampler options are validated") {
  SearchSpace s;
  CHECK_THROWS_WITH(ArchSampler(s, {.k_grad = 0}, 1), Catch::Contains("k_grad must be at least 1"));
  CHECK_THROWS_WITH(ArchSampler(s, {.k_grad = 8}, 1), Catch::Contains("more than the 7 candidate ops"));
  CHECK_THROWS_WITH(ArchSampler(s, {.explore_prob = 1.5}, 1), Catch::Contains("outside [0, 1]"));
}
