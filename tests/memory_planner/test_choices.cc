// Plans with run-time choices (memory_planner/choices.h): hand-worked regions and
// placements, nested groups, the structural checker against every admissible run of
// random trees, and the refusals.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <random>

#include "memory_planner/choices.h"

using namespace onnas::planner;

namespace {

BufferRequest buf(std::string name, size_t bytes, int32_t first, int32_t last, int32_t choice = -1) {
  BufferRequest b;
  b.name = std::move(name);
  b.bytes = bytes;
  b.first_step = first;
  b.last_step = last;
  b.alignment = 1;
  b.choice = choice;
  return b;
}

bool brute_has_overlap(const ConcretePlan& c) {
  for (size_t i = 0; i < c.buffers.size(); ++i)
    for (size_t j = i + 1; j < c.buffers.size(); ++j) {
      const auto &a = c.buffers[i], &b = c.buffers[j];
      const bool time = a.first_step <= b.last_step && b.first_step <= a.last_step;
      const size_t oa = c.plan.offsets[i], ob = c.plan.offsets[j];
      const bool space = oa < ob + b.bytes && ob < oa + a.bytes;
      if (time && space && a.bytes > 0 && b.bytes > 0) return true;
      if (a.bytes > 0 && oa + a.bytes > c.plan.arena_bytes) return true;
    }
  return false;
}

// Every admissible set of open choices: each group at most `capacity` open, only under
// an open parent. Enumerated for small trees.
std::vector<std::vector<uint8_t>> admissible(const ChoiceTree& tree) {
  std::vector<std::vector<uint8_t>> out;
  const size_t n = tree.choices.size();
  for (uint64_t mask = 0; mask < (uint64_t(1) << n); ++mask) {
    std::vector<uint8_t> open(n);
    for (size_t c = 0; c < n; ++c) open[c] = (mask >> c) & 1;
    std::vector<int> count(tree.groups.size(), 0);
    bool ok = true;
    for (size_t c = 0; c < n && ok; ++c) {
      if (!open[c]) continue;
      const ChoiceGroup& g = tree.groups[size_t(tree.choices[c].group)];
      ok = ++count[size_t(tree.choices[c].group)] <= g.capacity && (g.parent < 0 || open[size_t(g.parent)]);
    }
    if (ok) out.push_back(std::move(open));
  }
  return out;
}

}  // namespace

TEST_CASE("a group of choices reserves its capacity's largest choices, and a run packs the open ones") {
  ChoiceTree tree;
  tree.groups = {{.name = "edge", .parent = -1, .capacity = 2}};
  tree.choices = {{"conv", 0}, {"pool", 0}, {"skip", 0}};
  std::vector<BufferRequest> buffers = {buf("x", 4, 0, 9), buf("conv.saved", 8, 1, 8, 0),
                                        buf("pool.argmax", 4, 2, 7, 1), buf("y", 10, 9, 9)};
  Plan plan = plan_with_choices(buffers, tree, Strategy::greedy_by_size);
  REQUIRE_NOTHROW(check_choice_plan(buffers, tree, plan));
  CHECK(plan.choice_bytes == std::vector<size_t>{8, 4, 0});
  CHECK(plan.groups[0].bytes == 12);  // conv + pool: the two largest
  CHECK(plan.groups[0].first_step == 1);
  CHECK(plan.groups[0].last_step == 8);
  // Largest first: the region (12) at 0, y (10, step 9 only) at 0 beside it in time, x above both.
  CHECK(plan.groups[0].offset == 0);
  CHECK(plan.offsets[3] == 0);
  CHECK(plan.offsets[0] == 12);
  CHECK(plan.arena_bytes == 16);
  CHECK(plan.lower_bound_bytes == 16);  // steps 1..8: x and the whole region

  int64_t base[3];
  const uint8_t conv_skip[] = {1, 0, 1};
  place_choices(tree, plan, conv_skip, base);
  CHECK(base[0] == 0);
  CHECK(base[1] == -1);
  CHECK(base[2] == 8);
  const uint8_t pool_skip[] = {0, 1, 1};
  place_choices(tree, plan, pool_skip, base);
  CHECK(base[1] == 0);
  CHECK(base[2] == 4);
  const uint8_t all[] = {1, 1, 1};
  CHECK_THROWS_WITH(place_choices(tree, plan, all, base), Catch::Contains("more than 2 open choices"));
}

TEST_CASE("nested groups: a choice's content holds the regions of the groups under it") {
  // node: one of two edges; edge 0: one of two ops. Edge 1 has a buffer of its own.
  ChoiceTree tree;
  tree.groups = {{.name = "node", .parent = -1, .capacity = 1}, {.name = "edge0 ops", .parent = 0, .capacity = 1}};
  tree.choices = {{"edge0", 0}, {"edge1", 0}, {"a", 1}, {"b", 1}};
  std::vector<BufferRequest> buffers = {buf("edge0.out", 3, 0, 6, 0), buf("edge1.out", 20, 0, 6, 1),
                                        buf("a.saved", 5, 1, 5, 2), buf("b.saved", 7, 2, 4, 3),
                                        buf("loss", 1, 7, 7)};
  Plan plan = plan_with_choices(buffers, tree, Strategy::greedy_by_size);
  REQUIRE_NOTHROW(check_choice_plan(buffers, tree, plan));
  CHECK(plan.choice_bytes[2] == 5);
  CHECK(plan.choice_bytes[3] == 7);
  CHECK(plan.groups[1].bytes == 7);          // one op at a time: the larger
  CHECK(plan.choice_bytes[0] == 3 + 7);      // edge 0: its output beside the op region
  CHECK(plan.choice_bytes[1] == 20);
  CHECK(plan.groups[0].bytes == 20);         // one edge at a time
  CHECK(plan.arena_bytes == 20);             // loss lives after the region
  int64_t base[4];
  const uint8_t edge0_b[] = {1, 0, 0, 1};
  place_choices(tree, plan, edge0_b, base);
  CHECK(base[0] == 0);
  CHECK(base[3] == int64_t(plan.groups[1].offset));  // inside edge 0's content
  const uint8_t orphan[] = {0, 1, 1, 0};
  CHECK_THROWS_WITH(place_choices(tree, plan, orphan, base), Catch::Contains("under the closed choice 'edge0'"));
  for (const auto& open : admissible(tree)) {
    ConcretePlan c = concretize(buffers, tree, plan, open);
    CHECK_FALSE(find_overlap(c.buffers, c.plan));
    CHECK_FALSE(brute_has_overlap(c));
  }
}

TEST_CASE("random trees: the checker's proof holds in every admissible run, and it catches a short region") {
  std::mt19937_64 rng(7);
  const Strategy strategies[] = {Strategy::greedy_by_size, Strategy::best_fit, Strategy::area_best_gap, Strategy::best};
  int caught = 0;
  for (int trial = 0; trial < 300; ++trial) {
    ChoiceTree tree;
    std::uniform_int_distribution<int> coin(0, 1), cap(1, 3), n_choices(1, 3), steps(0, 20), span(0, 6), size(0, 64);
    // Up to three groups, each under the top or under a choice listed before it.
    const int groups = 1 + int(rng() % 3);
    for (int g = 0; g < groups; ++g) {
      int32_t parent = -1;
      if (!tree.choices.empty() && coin(rng)) parent = int32_t(rng() % tree.choices.size());
      tree.groups.push_back({fmt::format("g{}", g), parent, cap(rng)});
      for (int c = n_choices(rng); c > 0; --c) tree.choices.push_back({fmt::format("g{}c{}", g, c), g});
    }
    std::vector<BufferRequest> buffers;
    for (int i = int(rng() % 14); i > 0; --i) {
      const int32_t first = steps(rng);
      const int32_t choice = coin(rng) ? -1 : int32_t(rng() % tree.choices.size());
      BufferRequest b = buf(fmt::format("b{}", i), size_t(size(rng)), first, first + span(rng), choice);
      b.alignment = size_t(1) << (rng() % 4);
      buffers.push_back(b);
    }
    const Strategy strategy = strategies[trial % 4];
    Plan plan = plan_with_choices(buffers, tree, strategy);
    INFO("trial " << trial);
    REQUIRE_FALSE(find_choice_overlap(buffers, tree, plan));
    for (const auto& open : admissible(tree)) {
      ConcretePlan c = concretize(buffers, tree, plan, open);
      REQUIRE_FALSE(find_overlap(c.buffers, c.plan));
      REQUIRE_FALSE(brute_has_overlap(c));
    }
    // A region one alignment step too small must be reported.
    for (size_t g = 0; g < tree.groups.size(); ++g) {
      if (plan.groups[g].bytes == 0) continue;
      Plan broken = plan;
      broken.groups[g].bytes -= 1;
      CHECK(find_choice_overlap(buffers, tree, broken));
      ++caught;
      break;
    }
  }
  CHECK(caught > 100);
}

TEST_CASE("choice trees that cannot be planned are refused, naming the group or buffer") {
  ChoiceTree tree;
  tree.groups = {{.name = "g", .parent = -1, .capacity = 0}};
  tree.choices = {{"c", 0}};
  CHECK_THROWS_WITH(plan_with_choices({}, tree), Catch::Contains("('g'): capacity 0 is below 1"));
  tree.groups[0].capacity = 1;
  std::vector<BufferRequest> buffers = {buf("lost", 4, 0, 1, 5)};
  CHECK_THROWS_WITH(plan_with_choices(buffers, tree), Catch::Contains("('lost'): choice 5 is not a choice"));
  tree.groups.push_back({.name = "h", .parent = -1, .capacity = 1});
  tree.choices = {{"c0", 0}, {"d0", 1}, {"c1", 0}};
  CHECK_THROWS_WITH(plan_with_choices({}, tree), Catch::Contains("not listed together"));
  tree.choices = {{"c0", 0}, {"d0", 1}};
  tree.groups[0].parent = 1;  // g hangs under d0, which comes after g's choices
  CHECK_THROWS_WITH(plan_with_choices({}, tree), Catch::Contains("not listed before the group"));
  std::vector<BufferRequest> flat = {buf("x", 4, 0, 1, 0)};
  CHECK_THROWS_WITH(plan_memory(flat), Catch::Contains("plan it with plan_with_choices"));
}
