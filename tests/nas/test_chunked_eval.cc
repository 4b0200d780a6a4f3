// Chunked evaluation with the whole batch's batch-norm statistics (nas/chunked_eval.h):
// the logits equal those of one program over the whole batch in training-mode batch
// norm, for every chunk size, for a discrete network and for the supernet.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "graph/compile.h"
#include "graph/op.h"
#include "nas/chunked_eval.h"
#include "nas/network.h"
#include "nas/search_space.h"
#include "tests/nas/spaces.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "tests/alloc_counter.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

using test_spaces::small_space;

Genotype genotype_of(const SearchSpace& space) {
  // Every candidate op on some edge, inputs reaching back two states: batch norms at
  // several levels in each cell (sep_conv has two in a row).
  const std::vector<OpKind> ops = space.ops;
  Genotype g;
  int k = 0;
  for (int r = 0; r < 2; ++r) {
    auto& cell = r ? g.reduce : g.normal;
    for (int j = 0; j < space.nodes; ++j) {
      cell.push_back({{ops[size_t(k++) % ops.size()], j}, {ops[size_t(k++) % ops.size()], j + 1}});
    }
  }
  return g;
}

// Fills a tensor with N(mean, 1) values.
void fill(Rng& rng, Tensor t, float mean) {
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = mean + rng.normal();
}

// max |a - b| / (1 + max |b|)
double rel_diff(const float* a, const float* b, int64_t n) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), m = std::max(m, double(std::fabs(b[i])));
  return d / (1 + m);
}

int argmax_row(const float* p, int64_t k) { return int(std::max_element(p, p + k) - p); }

// Whole-batch logits (training-mode batch norm over all n images) and chunked ones
// (evaluation-mode batch norms given the whole batch's statistics) of one network.
void compare(const std::function<SearchNet(graph::Graph&, int64_t, bool)>& emit, int64_t n,
             std::initializer_list<int64_t> chunks, float input_mean) {
  const SearchSpace space = small_space();
  Rng rng(5);
  Buffer xb(size_t(n * space.in_channels * space.height * space.width) * 4);
  Tensor x(xb.data(), Shape{n, space.in_channels, space.height, space.width});
  fill(rng, x, input_mean);

  ParamStore params;
  graph::Graph whole;
  SearchNet wn = emit(whole, n, /*training=*/true);
  Rng init(9);
  init_params(params, whole, init);
  graph::Program p = graph::compile(whole, {.outputs = {wn.logits}});
  Arena arena(p.arena_bytes());
  p.run(arena, params, {{wn.x, x}});
  const Tensor ref = p.output(arena, wn.logits);

  for (int64_t chunk : chunks) {
    INFO("chunk " << chunk << " of " << n);
    graph::Graph g;
    SearchNet net = emit(g, chunk, /*training=*/false);
    init_params(params, g, init);  // only the running statistics are new
    ChunkedEval eval(g, net.x, net.logits);
    CHECK(eval.chunk() == chunk);
    CHECK(eval.levels() > 2);
    Arena a(eval.arena_bytes());
    Buffer ob(size_t(n * space.classes) * 4);
    Tensor out(ob.data(), Shape{n, space.classes});
    test::AllocCounter count;
    eval.run(a, params, x, out);
    CHECK(count.allocations() == 0);
    CHECK(rel_diff(out.f32(), ref.f32(), out.numel()) < 2e-5);
    for (int64_t i = 0; i < n; ++i)
      CHECK(argmax_row(out.f32() + i * space.classes, space.classes) ==
            argmax_row(ref.f32() + i * space.classes, space.classes));
  }
}

}  // namespace

TEST_CASE("chunked evaluation gives the whole batch's logits: discrete network") {
  const SearchSpace space = small_space();
  const Genotype geno = genotype_of(space);
  auto emit = [&](graph::Graph& g, int64_t batch, bool training) {
    return emit_discrete_net(g, space, geno, batch, training);
  };
  compare(emit, 12, {1, 3, 4, 12}, 0.0f);
  // Inputs far from zero: the shifted sums keep the variance exact.
  compare(emit, 12, {4}, 50.0f);
}

TEST_CASE("chunked evaluation gives the whole batch's logits: supernet") {
  const SearchSpace space = small_space();
  auto emit = [&](graph::Graph& g, int64_t batch, bool training) {
    if (training) return emit_search_net(g, space, batch);
    return emit_network(g, space, batch, {.track_running = true, .training = false},
                        search_body(space, ungated(space), {.track_running = true, .training = false}));
  };
  compare(emit, 10, {2, 5}, 0.0f);
}

TEST_CASE("each state's ReLU is emitted once: cell outputs across cells, node states across edges") {
  const SearchSpace space = small_space();
  // Every edge of both cell kinds reads a ReLU (conv ops), inputs reaching back two states.
  Genotype genotype;
  for (int r = 0; r < 2; ++r)
    for (int j = 0; j < space.nodes; ++j)
      (r ? genotype.reduce : genotype.normal).push_back({{OpKind::sep_conv_3x3, j}, {OpKind::conv_3x3, j + 1}});
  for (bool discrete : {false, true}) {
    graph::Graph g;
    if (discrete)
      emit_discrete_net(g, space, genotype, 4, /*training=*/true);
    else
      emit_search_net(g, space, 4);
    // No two ReLU nodes read the same value.
    std::vector<int> relus_of(g.values().size(), 0);
    for (const graph::Node& n : g.nodes())
      if (n.op->name == std::string("relu")) ++relus_of[size_t(n.inputs[0])];
    for (size_t v = 0; v < relus_of.size(); ++v) {
      INFO((discrete ? "discrete network: " : "supernet: ") << g.values()[v].name);
      CHECK(relus_of[v] <= 1);
    }
  }
}

TEST_CASE("chunked evaluation refuses batch norms over their own chunk, and batches that do not split") {
  const SearchSpace space = small_space();
  graph::Graph g;
  SearchNet net = emit_discrete_net(g, space, genotype_of(space), 4, /*training=*/true);
  CHECK_THROWS_WITH(ChunkedEval(g, net.x, net.logits), Catch::Contains("uses the statistics of its own chunk"));

  graph::Graph ge;
  SearchNet en = emit_discrete_net(ge, space, genotype_of(space), 4, /*training=*/false);
  ParamStore params;
  Rng init(1);
  init_params(params, ge, init);
  ChunkedEval eval(ge, en.x, en.logits);
  Arena a(eval.arena_bytes());
  Buffer xb(size_t(6 * 64) * 4), ob(size_t(6 * 3) * 4);
  CHECK_THROWS_WITH(eval.run(a, params, Tensor(xb.data(), Shape{6, 1, 8, 8}), Tensor(ob.data(), Shape{6, 3})),
                    Catch::Contains("6 images do not split into chunks of 4"));
}

TEST_CASE("channel_moments: shift, sum and sum of squares per channel, and prefixes of a program") {
  graph::Graph g;
  const graph::ValueId x = g.input("x", {Shape{2, 2, 1, 3}});
  const graph::ValueId m = ops::channel_moments(g, x);
  const graph::ValueId y = ops::relu(g, x);
  graph::Program p = graph::compile(g, {.outputs = {m, y}});
  // channel 0: 1 2 3 | 4 5 6, channel 1: -1 0 1 | 1e4 1e4 1e4
  float xv[] = {1, 2, 3, -1, 0, 1, 4, 5, 6, 1e4f, 1e4f, 1e4f};
  Arena a(p.arena_bytes());
  p.run(a, ParamStore{}, {{x, Tensor(xv, Shape{2, 2, 1, 3})}});
  const float* o = p.output(a, m).f32();
  CHECK(o[0] == 1);  // shifts: each channel's first value
  CHECK(o[1] == -1);
  CHECK(o[2] == 0 + 1 + 2 + 3 + 4 + 5);  // sum (x - 1)
  CHECK(o[3] == 0 + 1 + 2 + 3 * 10001.0f);
  CHECK(o[4] == 0 + 1 + 4 + 9 + 16 + 25);
  CHECK(o[5] == Approx(0 + 1 + 4 + 3 * 10001.0 * 10001.0));
  // A prefix runs only its steps: relu's output is left as the arena had it.
  std::memset(a.base(), 0, a.bytes());
  const size_t relu_step = size_t(p.producer_step(y)), moments_step = size_t(p.producer_step(m));
  REQUIRE(relu_step != moments_step);
  p.run_prefix(a, ParamStore{}, {{x, Tensor(xv, Shape{2, 2, 1, 3})}}, std::min(relu_step, moments_step) + 1);
  const bool relu_first = relu_step < moments_step;
  CHECK((p.output(a, y).f32()[0] == 1) == relu_first);
  CHECK((p.output(a, m).f32()[0] == 1) == !relu_first);
}
