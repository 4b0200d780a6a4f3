// The memory planner: hand-worked plans, properties over thousands of random buffer
// sets, in-place hints, the overlap checker, parsing and the dumps.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>

#include "memory_planner/dump.h"
#include "memory_planner/planner.h"
#include "memory_planner/synthetic.h"

using namespace onnas::planner;

namespace {

// Byte-granular buffers keep hand-worked offsets readable.
BufferRequest buf(std::string name, size_t bytes, int32_t first, int32_t last, int32_t share = -1) {
  BufferRequest b;
  b.name = std::move(name);
  b.bytes = bytes;
  b.first_step = first;
  b.last_step = last;
  b.alignment = 1;
  b.may_share_with = share;
  return b;
}

// The definition, step by step, for buffers without hints.
size_t brute_lower_bound(const std::vector<BufferRequest>& buffers) {
  std::map<int32_t, size_t> live;
  for (const auto& b : buffers)
    for (int32_t s = b.first_step; s <= b.last_step; ++s) live[s] += b.bytes;
  size_t best = 0;
  for (auto [s, bytes] : live) best = std::max(best, bytes);
  return best;
}

bool brute_has_overlap(const std::vector<BufferRequest>& buffers, const Plan& plan) {
  for (size_t i = 0; i < buffers.size(); ++i)
    for (size_t j = i + 1; j < buffers.size(); ++j) {
      const auto &a = buffers[i], &b = buffers[j];
      bool time = a.first_step <= b.last_step && b.first_step <= a.last_step;
      bool space = plan.offsets[i] < plan.offsets[j] + b.bytes && plan.offsets[j] < plan.offsets[i] + a.bytes;
      if (time && space && a.bytes > 0 && b.bytes > 0) return true;
    }
  return false;
}

std::vector<BufferRequest> random_buffers(std::mt19937_64& rng, bool with_hints) {
  std::uniform_int_distribution<int> count(0, 40), step(0, 30), span(0, 8), size(0, 5000), pick(0, 9);
  const size_t alignments[] = {1, 8, 64, 256};
  std::vector<BufferRequest> buffers(size_t(count(rng)));
  for (size_t i = 0; i < buffers.size(); ++i) {
    BufferRequest& b = buffers[i];
    b.name = "b" + std::to_string(i);
    b.bytes = pick(rng) == 0 ? 0 : size_t(size(rng));
    b.first_step = step(rng);
    b.last_step = b.first_step + (pick(rng) < 3 ? 0 : span(rng));
    b.alignment = alignments[pick(rng) % 4];
    if (with_hints && i > 0 && pick(rng) < 4) {
      // Aim at a buffer that dies where this one starts; sometimes a bad aim on purpose.
      size_t t = size_t(rng() % i);
      b.may_share_with = int32_t(t);
      if (pick(rng) < 7) {
        b.first_step = buffers[t].last_step;
        b.last_step = std::max(b.last_step, b.first_step);
        if (pick(rng) < 8) b.bytes = std::min(b.bytes, buffers[t].bytes);
      }
    }
  }
  return buffers;
}

const Strategy kAll[] = {Strategy::naive,         Strategy::greedy_by_size,   Strategy::greedy_by_breadth,
                         Strategy::best_fit,      Strategy::size_best_gap,    Strategy::breadth_best_gap,
                         Strategy::area_lowest,   Strategy::area_best_gap,
                         Strategy::best};

}  // namespace

TEST_CASE("planner: a chain that reuses memory, worked by hand", "[planner]") {
  // A dies when C is born; B lives across both. Lower bound: step 1 has A + B = 150.
  std::vector<BufferRequest> buffers = {buf("A", 100, 0, 1), buf("B", 50, 1, 2), buf("C", 100, 2, 3)};
  // Size order A, C, B: A at 0; C does not meet A in time, so 0 too; B meets both: 100.
  Plan plan = plan_memory(buffers, Strategy::greedy_by_size);
  CHECK(plan.offsets == std::vector<size_t>{0, 100, 0});
  CHECK(plan.arena_bytes == 150);
  CHECK(plan.lower_bound_bytes == 150);
  CHECK(plan.peak_step == 1);
  CHECK(plan.strategy == Strategy::greedy_by_size);

  Plan naive = plan_memory(buffers, Strategy::naive);
  CHECK(naive.offsets == std::vector<size_t>{0, 100, 150});
  CHECK(naive.arena_bytes == 250);

  // Best fit replays time: A at 0, B on top at 100; A dies, C takes A's hole at 0.
  Plan fit = plan_memory(buffers, Strategy::best_fit);
  CHECK(fit.offsets == std::vector<size_t>{0, 100, 0});
  CHECK(fit.arena_bytes == 150);
  check_plan(buffers, plan);
  check_plan(buffers, fit);
}

TEST_CASE("planner: alignment rounds offsets up", "[planner]") {
  std::vector<BufferRequest> buffers = {buf("x", 100, 0, 1), buf("y", 10, 0, 1)};
  buffers[0].alignment = 64;
  buffers[1].alignment = 64;
  Plan plan = plan_memory(buffers, Strategy::greedy_by_size);
  CHECK(plan.offsets == std::vector<size_t>{0, 128});
  CHECK(plan.arena_bytes == 138);
  CHECK(plan_memory(buffers, Strategy::naive).offsets == std::vector<size_t>{0, 128});
}

TEST_CASE("planner: greedy by size is not optimal here, best finds the optimum", "[planner]") {
  // Lower bound 10 at step 1 (a, b, d, e live: 3 + 3 + 2 + 2).
  std::vector<BufferRequest> buffers = {buf("a", 3, 1, 3), buf("b", 3, 1, 1), buf("c", 4, 2, 2), buf("d", 2, 0, 1),
                                        buf("e", 2, 1, 1)};
  CHECK(lower_bound(buffers) == 10);
  // Size order: c (4) at 0; a meets c at step 2, so 4; b fits under a at 0; d meets b
  // and a, the hole [3, 4) is too small: 7; e meets a, b and d: 9. Arena 11.
  Plan greedy = plan_memory(buffers, Strategy::greedy_by_size);
  CHECK(greedy.offsets == std::vector<size_t>{4, 0, 0, 7, 9});
  CHECK(greedy.arena_bytes == 11);
  // Breadth order puts the four buffers of the crowded step 1 first: a 0, b 3, d 6,
  // e 8, then c beside a at 3. Arena 10 = the lower bound, so optimal.
  Plan breadth = plan_memory(buffers, Strategy::greedy_by_breadth);
  CHECK(breadth.offsets == std::vector<size_t>{0, 3, 3, 6, 8});
  CHECK(breadth.arena_bytes == 10);
  Plan best = plan_memory(buffers);
  CHECK(best.arena_bytes == 10);
  CHECK(best.strategy == Strategy::greedy_by_breadth);
  check_plan(buffers, best);
}

TEST_CASE("planner: smallest gap versus lowest offset, worked by hand", "[planner]") {
  std::vector<BufferRequest> buffers = {buf("P", 5, 0, 1), buf("R", 4, 0, 0), buf("Q", 3, 0, 1),
                                        buf("T", 2, 0, 0), buf("V", 2, 0, 1), buf("X", 1, 1, 1)};
  // Size order P, R, Q, T, V stacks everything at step 0: 0, 5, 9, 12, 14 (arena 16 =
  // the lower bound at step 0). At step 1 only P [0,5), Q [9,12), V [14,16) remain,
  // leaving a 4-byte hole [5,9) and a 2-byte hole [12,14) for X.
  Plan lowest = plan_memory(buffers, Strategy::greedy_by_size);
  CHECK(lowest.offsets == std::vector<size_t>{0, 5, 9, 12, 14, 5});
  Plan gap = plan_memory(buffers, Strategy::size_best_gap);
  CHECK(gap.offsets == std::vector<size_t>{0, 5, 9, 12, 14, 12});
  CHECK(lowest.arena_bytes == 16);
  CHECK(gap.arena_bytes == 16);
  check_plan(buffers, lowest);
  check_plan(buffers, gap);
}

TEST_CASE("planner: validation names the buffer", "[planner]") {
  std::vector<BufferRequest> buffers = {buf("ok", 8, 0, 1), buf("backwards", 8, 3, 2)};
  CHECK_THROWS_WITH(plan_memory(buffers), "buffer 1 ('backwards'): last_step 2 is before first_step 3");
  buffers[1] = buf("early", 8, -1, 2);
  CHECK_THROWS_WITH(lower_bound(buffers), "buffer 1 ('early'): first_step -1 is negative");
  buffers[1] = buf("odd", 8, 0, 2);
  buffers[1].alignment = 48;
  CHECK_THROWS_WITH(plan_memory(buffers), "buffer 1 ('odd'): alignment 48 is not a power of two");
  buffers[1].alignment = 8;
  buffers[1].may_share_with = 7;
  CHECK_THROWS_WITH(plan_memory(buffers),
                    "buffer 1 ('odd'): may_share_with 7 is not a buffer index (there are 2 buffers)");
  CHECK(plan_memory(std::vector<BufferRequest>{}).arena_bytes == 0);
  CHECK(strategy_from_name("size_best_gap") == Strategy::size_best_gap);
  CHECK(!strategy_from_name("fastest").has_value());
}

TEST_CASE("planner: in-place hints are honoured when safe", "[planner]") {
  // y is written in place over x (x dies at step 1, y is born there); w is a workspace
  // at step 1 that must not land on the shared storage.
  std::vector<BufferRequest> buffers = {buf("x", 100, 0, 1), buf("y", 100, 1, 2, 0), buf("w", 50, 1, 1)};
  CHECK(lower_bound(buffers) == 150);  // x and y count once
  for (Strategy s : kAll) {
    if (s == Strategy::naive) continue;
    Plan plan = plan_memory(buffers, s);
    INFO(strategy_name(s));
    CHECK(plan.offsets[1] == plan.offsets[0]);
    CHECK(plan.arena_bytes == 150);
    check_plan(buffers, plan);
  }
  // The same plan without the hint is an overlap.
  Plan plan = plan_memory(buffers, Strategy::greedy_by_size);
  buffers[1].may_share_with = -1;
  CHECK(find_overlap(buffers, plan).has_value());

  SECTION("a chain x -> y -> z fuses into one block") {
    std::vector<BufferRequest> chain = {buf("x", 100, 0, 1), buf("y", 100, 1, 2, 0), buf("z", 60, 2, 4, 1),
                                        buf("t", 40, 3, 4)};
    Plan p = plan_memory(chain, Strategy::greedy_by_size);
    CHECK(p.offsets[0] == p.offsets[1]);
    CHECK(p.offsets[1] == p.offsets[2]);
    // The block keeps x's 100 bytes until z dies, so t goes above it.
    CHECK(p.offsets[3] == 100);
    check_plan(chain, p);
  }
  SECTION("invalid hints are ignored") {
    // Too big to fit in x's storage, and x still alive: planned apart.
    std::vector<BufferRequest> bad = {buf("x", 100, 0, 1), buf("big", 200, 1, 2, 0), buf("late", 10, 3, 4, 0)};
    Plan p = plan_memory(bad, Strategy::greedy_by_size);
    CHECK(p.offsets[1] == 0);    // the largest goes first
    CHECK(p.offsets[0] == 200);  // x meets big at step 1
    CHECK(p.arena_bytes == 300);
    check_plan(bad, p);
  }
  SECTION("two buffers aiming at one: only one takes it") {
    std::vector<BufferRequest> two = {buf("x", 100, 0, 1), buf("y1", 100, 1, 2, 0), buf("y2", 100, 1, 2, 0)};
    Plan p = plan_memory(two);
    CHECK(p.arena_bytes == 200);
    CHECK(p.offsets[1] != p.offsets[2]);
    check_plan(two, p);
  }
  SECTION("one-step links that would stack three buffers on one step are refused") {
    std::vector<BufferRequest> three = {buf("a", 100, 0, 2), buf("b", 100, 2, 2, 0), buf("c", 100, 2, 5, 1)};
    Plan p = plan_memory(three);
    check_plan(three, p);
    CHECK(p.arena_bytes == 200);
  }
}

TEST_CASE("planner: the overlap checker catches hand-broken plans", "[planner]") {
  std::vector<BufferRequest> buffers = {buf("A", 100, 0, 1), buf("B", 50, 1, 2), buf("C", 100, 2, 3)};
  Plan plan = plan_memory(buffers, Strategy::greedy_by_size);
  REQUIRE(!find_overlap(buffers, plan));

  Plan broken = plan;
  broken.offsets[1] = 60;  // B [60, 110) now meets A [0, 100) at step 1
  auto problem = find_overlap(buffers, broken);
  REQUIRE(problem);
  CHECK(*problem ==
        "buffer 0 ('A') (bytes [0, 100), steps 0..1) and buffer 1 ('B') (bytes [60, 110), steps 1..2) both use bytes "
        "[60, 100) at step 1");
  CHECK_THROWS_WITH(check_plan(buffers, broken), Catch::Contains("both use bytes [60, 100) at step 1"));

  broken = plan;
  broken.arena_bytes = 120;
  CHECK(*find_overlap(buffers, broken) == "buffer 1 ('B'): ends at byte 150, past the arena of 120 bytes");

  broken = plan;
  buffers[2].alignment = 64;
  broken.offsets[2] = 32;
  broken.arena_bytes = 200;
  CHECK(*find_overlap(buffers, broken) == "buffer 2 ('C'): offset 32 is not a multiple of its alignment 64");

  broken.offsets.pop_back();
  CHECK(*find_overlap(buffers, broken) == "the plan has 2 offsets for 3 buffers");
}

TEST_CASE("planner: the checker agrees with a brute-force pairwise check", "[planner][property]") {
  std::mt19937_64 rng(7);
  int overlaps = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto buffers = random_buffers(rng, false);
    for (auto& b : buffers) b.alignment = 1;
    Plan plan;
    plan.offsets.resize(buffers.size());
    for (auto& o : plan.offsets) o = rng() % 20000;
    plan.arena_bytes = 1 << 20;
    bool brute = brute_has_overlap(buffers, plan);
    overlaps += brute;
    INFO("trial " << trial);
    REQUIRE(find_overlap(buffers, plan).has_value() == brute);
  }
  CHECK(overlaps > 100);  // the test saw both answers
}

TEST_CASE("planner: properties over thousands of random buffer sets", "[planner][property]") {
  std::mt19937_64 rng(20240601);
  for (int trial = 0; trial < 3000; ++trial) {
    bool with_hints = trial % 2 == 1;
    auto buffers = random_buffers(rng, with_hints);
    INFO("trial " << trial << ", " << buffers.size() << " buffers, hints " << with_hints);
    size_t lb = lower_bound(buffers);
    if (!with_hints) REQUIRE(lb == brute_lower_bound(buffers));
    std::map<Strategy, size_t> arena;
    for (Strategy s : kAll) {
      Plan plan = plan_memory(buffers, s);
      INFO(strategy_name(s));
      auto problem = find_overlap(buffers, plan);
      if (problem) FAIL(*problem);
      REQUIRE(plan.lower_bound_bytes == lb);
      REQUIRE(plan.arena_bytes >= lb);
      if (s != Strategy::best) REQUIRE(plan.strategy == s);
      arena[s] = plan.arena_bytes;
    }
    size_t sum = 0;
    bool byte_aligned = true;
    for (const auto& b : buffers) {
      sum += b.bytes;
      byte_aligned = byte_aligned && b.alignment == 1;
    }
    if (byte_aligned) REQUIRE(arena[Strategy::naive] == sum);
    REQUIRE(arena[Strategy::naive] >= sum);
    for (auto [s, bytes] : arena) REQUIRE(arena[Strategy::best] <= bytes);
  }
}

TEST_CASE("planner: training-step buffer sets plan close to the lower bound", "[planner]") {
  auto buffers = synthetic_training_step({.target_buffers = 1500, .seed = 3});
  CHECK(buffers.size() >= 1500);
  CHECK(std::any_of(buffers.begin(), buffers.end(), [](const auto& b) { return b.may_share_with >= 0; }));
  size_t sum = 0;
  for (const auto& b : buffers) sum += b.bytes;
  for (Strategy s : kAll) {
    Plan plan = plan_memory(buffers, s);
    INFO(strategy_name(s));
    check_plan(buffers, plan);
    if (s == Strategy::naive) {
      CHECK(plan.arena_bytes == sum);  // every size is a multiple of 64
    } else {
      CHECK(double(plan.arena_bytes) <= 1.05 * double(plan.lower_bound_bytes));
    }
  }
  // The generator is a function of its seed.
  auto again = synthetic_training_step({.target_buffers = 1500, .seed = 3});
  REQUIRE(again.size() == buffers.size());
  CHECK(std::equal(buffers.begin(), buffers.end(), again.begin(), [](const auto& a, const auto& b) {
    return a.name == b.name && a.bytes == b.bytes && a.first_step == b.first_step && a.last_step == b.last_step;
  }));
}

TEST_CASE("planner: parse_buffer_list reads good lists", "[planner][parse]") {
  auto buffers = parse_buffer_list(R"([
      {"name": "conv1.out", "bytes": 4096, "first": 0, "last": 2, "op": "conv2d", "kind": "activation"},
      {"name": "relu1.out", "bytes": 4096, "first": 2, "last": 3, "may_share_with": 0},
      {"name": "ws", "bytes": 0, "first": 1, "last": 1, "alignment": 16}])",
                                   "list.json");
  REQUIRE(buffers.size() == 3);
  CHECK(buffers[0].name == "conv1.out");
  CHECK(buffers[0].bytes == 4096);
  CHECK(buffers[0].op == "conv2d");
  CHECK(buffers[0].kind == "activation");
  CHECK(buffers[0].alignment == 64);
  CHECK(buffers[1].may_share_with == 0);
  CHECK(buffers[1].op.empty());
  CHECK(buffers[2].alignment == 16);
  CHECK(parse_buffer_list("[]", "empty.json").empty());
}

TEST_CASE("planner: parse_buffer_list refuses each kind of bad list", "[planner][parse]") {
  auto refuses = [](std::string_view text, const std::string& message) {
    INFO(text);
    CHECK_THROWS_WITH(parse_buffer_list(text, "plan.json"), message);
  };
  refuses("[{\"name\": ", "plan.json: not valid JSON (expected a list of buffers)");
  refuses("{\"name\": \"x\"}", "plan.json: expected a JSON list of buffers, found object");
  refuses("[3]", "plan.json: buffer entry 0 is number, not an object");
  refuses(R"([{"bytes": 1, "first": 0, "last": 0}])", "plan.json: buffer entry 0: missing \"name\"");
  refuses(R"([{"name": "a", "bytes": 1, "first": 0, "last": 0}, {"name": "b", "first": 0, "last": 0}])",
          "plan.json: buffer entry 1 ('b'): missing \"bytes\"");
  refuses(R"([{"name": "a", "bytes": 1, "last": 0}])", "plan.json: buffer entry 0 ('a'): missing \"first\"");
  refuses(R"([{"name": "a", "bytes": 1, "first": 0}])", "plan.json: buffer entry 0 ('a'): missing \"last\"");
  refuses(R"([{"name": "a", "bytes": -5, "first": 0, "last": 0}])",
          "plan.json: buffer entry 0 ('a'): \"bytes\" is -5, it must be at least 0");
  refuses(R"([{"name": "a", "bytes": 1.5, "first": 0, "last": 0}])",
          "plan.json: buffer entry 0 ('a'): \"bytes\" must be an integer, found 1.5");
  refuses(R"([{"name": "a", "bytes": "12", "first": 0, "last": 0}])",
          "plan.json: buffer entry 0 ('a'): \"bytes\" must be an integer, found \"12\"");
  refuses(R"([{"name": "a", "bytes": 1, "first": -1, "last": 0}])",
          "plan.json: buffer entry 0 ('a'): \"first\" is -1, it must be at least 0");
  refuses(R"([{"name": "a", "bytes": 1, "first": 4, "last": 2}])",
          "plan.json: buffer entry 0 ('a'): \"last\" (2) is before \"first\" (4)");
  refuses(R"([{"name": "a", "bytes": 1, "first": 0, "last": 2, "alignment": 24}])",
          "plan.json: buffer entry 0 ('a'): \"alignment\" 24 is not a power of two");
  refuses(R"([{"name": 7, "bytes": 1, "first": 0, "last": 2}])",
          "plan.json: buffer entry 0: \"name\" must be a string, found number");
  refuses(R"([{"name": "a", "bytes": 1, "first": 0, "last": 2, "may_share_with": 3}])",
          "plan.json: buffer entry 0 ('a'): \"may_share_with\" is 3, larger than 0");
}

TEST_CASE("planner: the JSON dump round-trips", "[planner][dump]") {
  auto buffers = synthetic_training_step({.target_buffers = 200, .seed = 11});
  buffers[3].alignment = 256;
  Plan plan = plan_memory(buffers);
  nlohmann::json j = plan_to_json(buffers, plan);
  CHECK(j["arena_bytes"] == plan.arena_bytes);
  CHECK(j["lower_bound_bytes"] == plan.lower_bound_bytes);
  CHECK(j["strategy"] == std::string(strategy_name(plan.strategy)));
  CHECK(j["peak_step"] == plan.peak_step);
  REQUIRE(j["buffers"].size() == buffers.size());
  auto back = parse_buffer_list(j["buffers"].dump(), "dump");
  REQUIRE(back.size() == buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    INFO(i);
    CHECK(back[i].name == buffers[i].name);
    CHECK(back[i].op == buffers[i].op);
    CHECK(back[i].kind == buffers[i].kind);
    CHECK(back[i].bytes == buffers[i].bytes);
    CHECK(back[i].first_step == buffers[i].first_step);
    CHECK(back[i].last_step == buffers[i].last_step);
    CHECK(back[i].alignment == buffers[i].alignment);
    CHECK(back[i].may_share_with == buffers[i].may_share_with);
    CHECK(j["buffers"][i]["offset"] == plan.offsets[i]);
  }
  // Planning the parsed list gives the same plan.
  CHECK(plan_memory(back).offsets == plan.offsets);
}

TEST_CASE("planner: the text summary and the ASCII picture", "[planner][dump]") {
  std::vector<BufferRequest> buffers = {buf("A", 100, 0, 1), buf("B", 50, 1, 2), buf("C", 100, 2, 3)};
  buffers[0].op = "conv2d";
  Plan plan = plan_memory(buffers, Strategy::greedy_by_size);
  std::string text = plan_summary(buffers, plan);
  INFO(text);
  CHECK_THAT(text, Catch::Contains("arena        150 B (150 bytes)"));
  CHECK_THAT(text, Catch::Contains("ratio        1.000"));
  CHECK_THAT(text, Catch::Contains("strategy     greedy_by_size"));
  CHECK_THAT(text, Catch::Contains("peak step    1 (2 buffers live:)"));
  CHECK_THAT(text, Catch::Contains("conv2d"));
  // Step 1 of the picture: A on the first 2/3 of the arena, B on the last third.
  CHECK_THAT(plan_ascii(buffers, plan, 6), Catch::Contains("   1 |000011|"));
  CHECK_THAT(plan_ascii(buffers, plan, 6), Catch::Contains("   3 |2222..|"));
  Plan broken = plan;
  broken.offsets[1] = 0;
  CHECK_THAT(plan_ascii(buffers, broken, 6), Catch::Contains("   1 |!!00..|"));
}

TEST_CASE("planner: the HTML page is self-contained, one rect per buffer", "[planner][dump]") {
  auto buffers = synthetic_training_step({.target_buffers = 300, .seed = 5});
  buffers[0].name = "<odd & \"named\">";
  Plan plan = plan_memory(buffers);
  std::string html = plan_to_html(buffers, plan, "test <plan>");
  auto count = [&](std::string_view needle) {
    size_t n = 0;
    for (size_t at = html.find(needle); at != std::string::npos; at = html.find(needle, at + 1)) ++n;
    return n;
  };
  CHECK(count("<rect class=\"b ") == buffers.size());
  CHECK(count("<title>") == buffers.size() + 1);  // one per rect, plus the page's
  CHECK(count("http") == 0);
  CHECK(count(" src=") == 0);
  CHECK(count(" href=") == 0);
  CHECK(count("&lt;odd &amp; &quot;named&quot;&gt;") == 1);
  CHECK(count("test &lt;plan&gt;") == 2);
  CHECK(count("peak step") >= 1);
  CHECK(count("MiB") >= 2);
  CHECK(html.rfind("</html>") != std::string::npos);
}

// Writes an example page for a look in a browser:
//   ONNAS_PLAN_HTML=/tmp/plan.html build/tests/test_planner "[.example]"
TEST_CASE("planner: example page", "[.example]") {
  const char* env = std::getenv("ONNAS_PLAN_HTML");
  const std::string path = env ? env : "/tmp/plan.html";
  auto buffers = synthetic_training_step({.target_buffers = 400, .seed = 1});
  Plan plan = plan_memory(buffers);
  std::ofstream(path)
      << plan_to_html(buffers, plan, "DARTS-like training step (synthetic, 4 cells, batch 32)");
  std::ofstream(path + ".txt") << plan_summary(buffers, plan);
}
