// The graph engine end to end: compile, plan, run; dead code, ordering, the arena,
// feeds, allocation-free runs, determinism, optimizers, and a small CNN that learns.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <concepts>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/op.h"
#include "graph/optimizer.h"
#include "memory_planner/planner.h"
#include "nas/network.h"
#include "nas/sampler.h"
#include "nas/search_step.h"
#include "nas/search.h"
#include "ops/ops.h"
#include "runtime/bf16.h"
#include "runtime/rng.h"
#include "runtime/threading.h"

using namespace onnas;
using graph::Graph;
using graph::ValueId;

// Counts every heap allocation of this test executable (tests/alloc_counter.h).
#include "tests/alloc_counter.h"

namespace {

void fill_random(Tensor t, Rng& rng, float scale = 1.0f) {
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = scale * rng.normal();
}

struct Cnn {
  ValueId x, labels, logits, loss;
  std::vector<ValueId> weights;
};

Cnn small_cnn(Graph& g, int64_t batch, int64_t classes, bool training) {
  Cnn n;
  n.x = g.input("x", {Shape{batch, 1, 8, 8}});
  n.labels = g.input("labels", {Shape{batch}, DType::i32});
  ValueId w1 = g.param("conv1.weight", {Shape{8, 1, 3, 3}});
  ValueId g1 = g.param("bn1.weight", {Shape{8}});
  ValueId b1 = g.param("bn1.bias", {Shape{8}});
  ValueId m1 = g.param("bn1.running_mean", {Shape{8}});
  ValueId v1 = g.param("bn1.running_var", {Shape{8}});
  ValueId w2 = g.param("conv2.weight", {Shape{16, 8, 3, 3}});
  ValueId fw = g.param("fc.weight", {Shape{classes, 16}});
  ValueId fb = g.param("fc.bias", {Shape{classes}});
  n.weights = {w1, g1, b1, w2, fw, fb};
  ValueId y = ops::conv2d(g, n.x, w1, {.pad = 1}, "conv1");
  y = ops::relu(g, ops::batch_norm(g, y, {g1, b1, m1, v1}, {.training = training}, "bn1"), "relu1");
  y = ops::max_pool2d(g, y, {.kernel = 3, .stride = 2, .pad = 1}, "pool1");
  y = ops::relu(g, ops::conv2d(g, y, w2, {.pad = 1}, "conv2"), "relu2");
  n.logits = ops::linear(g, ops::global_avg_pool(g, y, "gap"), fw, fb, "fc");
  n.loss = ops::softmax_cross_entropy(g, n.logits, n.labels, "loss");
  return n;
}

graph::Program training_program(Graph& g, const Cnn& n) {
  auto grads = graph::backward(g, n.loss, n.weights);
  graph::CompileOptions o{.outputs = {n.loss, n.logits}};
  for (size_t i = 0; i < grads.size(); ++i) o.param_grads.emplace_back(n.weights[i], grads[i]);
  return graph::compile(g, o);
}

// Class c: a bright 4x4 square in quadrant c.
void quadrant_task(Rng& rng, Tensor x, Tensor y) {
  const int64_t b = x.shape()[0];
  for (int64_t i = 0; i < b; ++i) {
    int32_t c = int32_t(rng.uniform_int(4));
    y.i32()[i] = c;
    float* img = x.f32() + i * 64;
    for (int p = 0; p < 64; ++p) img[p] = 0.3f * rng.normal();
    int oy = (c / 2) * 4, ox = (c % 2) * 4;
    for (int r = 0; r < 4; ++r)
      for (int q = 0; q < 4; ++q) img[(oy + r) * 8 + ox + q] += 1.5f;
  }
}

}  // namespace

TEST_CASE("compile removes dead code and runs what the outputs need") {
  Graph g;
  ValueId x = g.input("x", {Shape{2, 3}});
  ValueId a = ops::relu(g, x, "a");
  ValueId dead = ops::scale(g, x, 3.0f, "dead");
  ValueId b = ops::scale(g, a, 2.0f, "b");
  graph::Program p = graph::compile(g, {.outputs = {b}});
  CHECK(p.order().size() == 2);
  for (size_t step = 0; step < p.num_steps(); ++step) CHECK(p.step_outputs(step)[0] != dead);
  Arena arena(p.arena_bytes());
  float xs[6] = {-1, 2, -3, 4, 0.5f, -0.5f};
  ParamStore ps;
  p.run(arena, ps, {{x, Tensor(xs, Shape{2, 3})}});
  Tensor out = p.output(arena, b);
  const float expect[6] = {0, 4, 0, 8, 1, 0};
  for (int i = 0; i < 6; ++i) CHECK(out.f32()[i] == expect[i]);
}

namespace {

// Attributes that own heap memory and count their live copies; with `kComparable`
// they compare equal by value, so equal ones may share one copy in a program.
template <bool kComparable>
struct CountedPattern {
  std::vector<float> values;
  static inline int live = 0;
  explicit CountedPattern(std::vector<float> v) : values(std::move(v)) { ++live; }
  CountedPattern(const CountedPattern& o) : values(o.values) { ++live; }
  CountedPattern(CountedPattern&& o) noexcept : values(std::move(o.values)) { ++live; }
  ~CountedPattern() { --live; }
  bool operator==(const CountedPattern& o) const
    requires kComparable
  {
    return values == o.values;
  }
};
using Pattern = CountedPattern<false>;
using EqualPattern = CountedPattern<true>;
static_assert(!std::equality_comparable<Pattern> && std::equality_comparable<EqualPattern>);

// out = x + the pattern, repeated.
template <typename P>
graph::OpDef add_pattern_op(const char* name) {
  return {
      .name = name,
      .infer = [](const graph::InferContext& c) { return std::vector{c.input(0)}; },
      .forward =
          [](const graph::RunContext& c) {
            const std::vector<float>& v = c.attrs<P>().values;
            for (int64_t i = 0; i < c.outputs[0].numel(); ++i)
              c.outputs[0].f32()[i] = c.inputs[0].f32()[i] + v[size_t(i) % v.size()];
          },
  };
}
const graph::OpDef kAddPattern = add_pattern_op<Pattern>("add_pattern");
const graph::OpDef kAddEqualPattern = add_pattern_op<EqualPattern>("add_equal_pattern");
// Reads its attributes as the wrong type.
const graph::OpDef kMisread{
    .name = "misread",
    .infer = [](const graph::InferContext& c) { return std::vector{c.input(0)}; },
    .forward = [](const graph::RunContext& c) { (void)c.attrs<float>(); },
};

}  // namespace

TEST_CASE("a program holds its steps' attributes in a table of its own, checked by type") {
  const int live0 = Pattern::live;
  graph::Program p;
  ValueId x, y;
  {
    Graph g;
    x = g.input("x", {Shape{2, 3}});
    ValueId a = g.add_node1(kAddPattern, "a", {x}, Pattern({1, 2}));
    ValueId b = ops::scale(g, a, 0.5f, "half");  // a float, held in place
    y = g.add_node1(kAddPattern, "b", {b}, Pattern({10, 20, 30}));
    CHECK(g.node(g.value(a).producer).attrs.get<Pattern>().values.size() == 2);
    CHECK_THROWS_WITH(g.node(g.value(a).producer).attrs.get<float>(), Catch::Contains("holds"));
    p = graph::compile(g, {.outputs = {y}});
  }  // the graph and its attributes are gone; the program has its own copies
  CHECK(Pattern::live == live0 + 2);
  CHECK(p.table_bytes() > 0);
  Arena arena(p.arena_bytes());
  float xs[6] = {0, 1, 2, 3, 4, 5};
  ParamStore ps;
  p.run(arena, ps, {{x, Tensor(xs, Shape{2, 3})}});
  const float expect[6] = {10.5f, 21.5f, 31.5f, 12.5f, 22.5f, 33.5f};  // (x + [1 2 ...]) / 2 + [10 20 30 ...]
  for (int i = 0; i < 6; ++i) CHECK(p.output(arena, y).f32()[i] == expect[i]);
  graph::Program moved = std::move(p);
  CHECK(Pattern::live == live0 + 2);
  moved.run(arena, ps, {{x, Tensor(xs, Shape{2, 3})}});
  CHECK(moved.output(arena, y).f32()[5] == expect[5]);
  moved = graph::Program();
  CHECK(Pattern::live == live0);  // destroyed with the program

  Graph g;
  ValueId in = g.input("x", {Shape{2}});
  ValueId out = g.add_node1(kMisread, "m", {in}, Pattern({1}));
  graph::Program bad = graph::compile(g, {.outputs = {out}});
  Arena a2(bad.arena_bytes());
  float two[2] = {};
  CHECK_THROWS_WITH(bad.run(a2, ps, {{in, Tensor(two, Shape{2})}}), Catch::Contains("reads attributes of type"));
}

TEST_CASE("steps with equal attributes share one copy in the program's table, unequal ones keep their own") {
  const int live0 = EqualPattern::live;
  graph::Program p;
  ValueId x, y;
  {
    Graph g;
    x = g.input("x", {Shape{4}});
    ValueId a = g.add_node1(kAddEqualPattern, "a", {x}, EqualPattern({1, 2}));
    ValueId b = g.add_node1(kAddEqualPattern, "b", {a}, EqualPattern({100, 200}));
    ValueId c = g.add_node1(kAddEqualPattern, "c", {b}, EqualPattern({1, 2}));
    y = g.add_node1(kAddEqualPattern, "d", {c}, EqualPattern({1, 2}));
    p = graph::compile(g, {.outputs = {y}});
  }
  CHECK(EqualPattern::live == live0 + 2);  // {1, 2} once for a, c and d; {100, 200} once
  Arena arena(p.arena_bytes());
  float xs[4] = {0, 1, 2, 3};
  ParamStore ps;
  p.run(arena, ps, {{x, Tensor(xs, Shape{4})}});
  const float expect[4] = {103, 207, 105, 209};  // x + 3 * [1 2] + [100 200]
  for (int i = 0; i < 4; ++i) CHECK(p.output(arena, y).f32()[i] == expect[i]);
  p = graph::Program();
  CHECK(EqualPattern::live == live0);
}

TEST_CASE("a profiled run counts every node under its op and leaves the results unchanged") {
  Graph g;
  ValueId x = g.input("x", {Shape{2, 3}});
  ValueId a = ops::relu(g, x, "a");
  ValueId b = ops::scale(g, a, 2.0f, "b");
  ValueId c = ops::scale(g, b, 0.5f, "c");
  graph::Program p = graph::compile(g, {.outputs = {c}, .inplace = false});
  Arena arena(p.arena_bytes());
  float xs[6] = {-1, 2, -3, 4, 0.5f, -0.5f};
  ParamStore ps;
  graph::Profile profile;
  p.run(arena, ps, {{x, Tensor(xs, Shape{2, 3})}}, nullptr, &profile);
  p.run(arena, ps, {{x, Tensor(xs, Shape{2, 3})}}, nullptr, &profile);
  REQUIRE(profile.entries.size() == 2);
  CHECK(profile.entries[0].op == "relu");
  CHECK(profile.entries[0].calls == 2);
  CHECK(profile.entries[1].op == "scale");
  CHECK(profile.entries[1].calls == 4);
  CHECK(profile.total_seconds() >= 0);
  CHECK_THAT(profile.table(), Catch::Contains("scale") && Catch::Contains("total"));
  const Tensor out = p.output(arena, c);
  for (int i = 0; i < 6; ++i) CHECK(out.f32()[i] == std::max(xs[i], 0.0f));
}

TEST_CASE("the numerics check names the first op that produced a non-finite value") {
  Graph g;
  ValueId x = g.input("x", {Shape{2, 2}});
  ValueId big = ops::scale(g, x, 1e30f, "big");
  ValueId boom = ops::scale(g, big, 1e30f, "boom");  // 1e31 * 1e30 overflows to inf
  ValueId out = ops::relu(g, boom, "after");
  graph::Program p = graph::compile(g, {.outputs = {out}});
  Arena arena(p.arena_bytes());
  ParamStore ps;
  float xs[4] = {1, -1, 10, 0.5f};
  CHECK_NOTHROW(p.run(arena, ps, {{x, Tensor(xs, Shape{2, 2})}}));  // off: runs through
  graph::set_check_numerics(true);
  CHECK_THROWS_WITH(p.run(arena, ps, {{x, Tensor(xs, Shape{2, 2})}}),
                    Catch::Contains("op scale (node 'boom'") && Catch::Contains("inf at element 0"));
  xs[2] = std::nanf("");
  CHECK_THROWS_WITH(p.run(arena, ps, {{x, Tensor(xs, Shape{2, 2})}}),
                    Catch::Contains("input 'x' holds a non-finite value") && Catch::Contains("element 2"));
  for (float& v : xs) v = 1e-30f;  // 1e-30 * 1e30 * 1e30 = 1e30: finite
  CHECK_NOTHROW(p.run(arena, ps, {{x, Tensor(xs, Shape{2, 2})}}));  // all finite: no complaint
  graph::set_check_numerics(false);
}

TEST_CASE("run refuses a small arena, a missing feed and a wrongly shaped feed") {
  Graph g;
  ValueId x = g.input("images", {Shape{4, 4}});
  ValueId y = ops::relu(g, ops::scale(g, x, 2.0f));
  graph::Program p = graph::compile(g, {.outputs = {y}});
  ParamStore ps;
  float xs[16] = {};
  Arena small(p.arena_bytes() - 1);
  CHECK_THROWS_WITH(p.run(small, ps, {{x, Tensor(xs, Shape{4, 4})}}),
                    Catch::Contains("smaller than the") && Catch::Contains(std::to_string(p.arena_bytes())));
  Arena arena(p.arena_bytes());
  CHECK_THROWS_WITH(p.run(arena, ps, {}), Catch::Contains("no feed for input 'images'"));
  CHECK_THROWS_WITH(p.run(arena, ps, {{x, Tensor(xs, Shape{2, 8})}}),
                    Catch::Contains("'images' expects f32 [4, 4], was fed f32 [2, 8]"));
  CHECK_NOTHROW(p.run(arena, ps, {{x, Tensor(xs, Shape{4, 4})}}));
}

TEST_CASE("a parameter missing from the store or of another shape is named") {
  Graph g;
  ValueId x = g.input("x", {Shape{2, 3}});
  ValueId w = g.param("fc.weight", {Shape{4, 3}});
  ValueId y = ops::linear(g, x, w, graph::kNoValue);
  graph::Program p = graph::compile(g, {.outputs = {y}});
  Arena arena(p.arena_bytes());
  float xs[6] = {};
  ParamStore empty;
  CHECK_THROWS_WITH(p.run(arena, empty, {{x, Tensor(xs, Shape{2, 3})}}), Catch::Contains("fc.weight"));
  ParamStore wrong;
  wrong.add_weight("fc.weight", Shape{3, 4});
  CHECK_THROWS_WITH(p.run(arena, wrong, {{x, Tensor(xs, Shape{2, 3})}}),
                    Catch::Contains("fc.weight") && Catch::Contains("[3, 4]") && Catch::Contains("[4, 3]"));
}

TEST_CASE("a gradient without storage is refused by name, and a moved one is found again without allocating") {
  Graph g;
  ValueId x = g.input("x", {Shape{2, 3}});
  ValueId w = g.param("fc.weight", {Shape{4, 3}});
  ValueId y = ops::linear(g, x, w, graph::kNoValue);
  ValueId labels = g.input("labels", {Shape{2}, DType::i32});
  ValueId loss = ops::softmax_cross_entropy(g, y, labels);
  std::vector<ValueId> grads = graph::backward(g, loss, std::vector<ValueId>{w});
  graph::Program p = graph::compile(g, {.outputs = {loss}, .param_grads = {{w, grads[0]}}});
  CHECK(p.grad_params() == std::vector<std::string>{"fc.weight"});
  Arena arena(p.arena_bytes());
  float xs[6] = {1, 2, 3, 4, 5, 6};
  int32_t ys[2] = {1, 3};
  const Tensor xt(xs, Shape{2, 3}), yt(ys, Shape{2}, DType::i32);
  ParamStore ps;
  ps.add_weight("fc.weight", Shape{4, 3});
  ps.set_grad_view("fc.weight", nullptr);
  CHECK_THROWS_WITH(p.run(arena, ps, {{x, xt}, {labels, yt}}),
                    Catch::Contains("fc.weight@grad") && Catch::Contains("no storage"));
  float first[12] = {}, second[12] = {};
  ps.set_grad_view("fc.weight", first);
  p.run(arena, ps, {{x, xt}, {labels, yt}});
  // Zero weights: uniform softmax, d loss / d w[k] = mean over rows of (1/4 - [y == k]) x.
  CHECK(first[0] == Approx(0.5f * (0.25f * 1 + 0.25f * 4)));
  CHECK(first[3] == Approx(0.5f * (-0.75f * 1 + 0.25f * 4)));
  ps.set_grad_view("fc.weight", second);
  {
    test::AllocCounter count;
    p.run(arena, ps, {{x, xt}, {labels, yt}});
    CHECK(count.allocations() == 0);
  }
  for (int i = 0; i < 12; ++i) CHECK(second[i] == first[i]);
  CHECK(first[0] == Approx(0.625f));  // untouched by the second run
}

namespace {

// Over the backward nodes of g: how many run `op`, and how many inputs read one of `values`.
int backward_nodes_of(const Graph& g, std::string_view op) {
  int count = 0;
  for (const graph::Node& n : g.nodes()) count += n.backward && op == n.op->name;
  return count;
}
int backward_reads(const Graph& g, std::initializer_list<ValueId> values) {
  int count = 0;
  for (const graph::Node& n : g.nodes())
    for (ValueId v : n.inputs) count += n.backward && std::find(values.begin(), values.end(), v) != values.end();
  return count;
}

}  // namespace

TEST_CASE("a relu of a feed is recomputed in the backward, not kept, and a relu of an activation is kept") {
  for (bool fed : {true, false}) {
    CAPTURE(fed);
    Graph g;
    ValueId x = g.input("x", {Shape{2, 3, 6, 6}});
    ValueId w = g.param("conv.weight", {Shape{4, 3, 3, 3}});
    ValueId w0 = g.param("conv0.weight", {Shape{3, 3, 1, 1}});
    ValueId labels = g.input("labels", {Shape{2}, DType::i32});
    ValueId in = fed ? x : ops::conv2d(g, x, w0, {}, "conv0");
    ValueId r = ops::relu(g, in, "relu");
    ValueId y = ops::conv2d(g, r, w, {.pad = 1}, "conv");
    ValueId logits = ops::global_avg_pool(g, y);
    ValueId loss = ops::softmax_cross_entropy(g, logits, labels);
    std::vector<ValueId> wrt{w};
    if (!fed) wrt.push_back(w0);
    graph::backward(g, loss, wrt);
    CHECK(backward_nodes_of(g, "relu_recompute") == (fed ? 1 : 0));
    CHECK((backward_reads(g, {r}) == 0) == fed);
  }
}

TEST_CASE("a non-affine batch norm's backward reads its output, not its input") {
  for (bool affine : {false, true}) {
    CAPTURE(affine);
    Graph g;
    ValueId x = g.input("x", {Shape{2, 3, 6, 6}});
    ValueId w = g.param("conv.weight", {Shape{4, 3, 3, 3}});
    ValueId labels = g.input("labels", {Shape{2}, DType::i32});
    ValueId c = ops::conv2d(g, x, w, {.pad = 1}, "conv");
    ops::BatchNormParams p;
    if (affine) {
      p.gamma = g.param("bn.weight", {Shape{4}});
      p.beta = g.param("bn.bias", {Shape{4}});
    }
    ValueId y = ops::batch_norm(g, c, p, {}, "bn");
    ValueId loss = ops::softmax_cross_entropy(g, ops::global_avg_pool(g, y), labels);
    graph::backward(g, loss, std::vector<ValueId>{w});
    CHECK(backward_nodes_of(g, affine ? "batch_norm_backward" : "batch_norm_backward_output") == 1);
    CHECK(backward_reads(g, {c}) == (affine ? 1 : 0));
    CHECK(backward_reads(g, {y}) == (affine ? 0 : 1));
  }
}

TEST_CASE("a relu of a non-affine batch norm is recomputed from the output that norm keeps anyway") {
  for (bool affine : {false, true}) {
    CAPTURE(affine);
    Graph g;
    ValueId x = g.input("x", {Shape{2, 3, 6, 6}});
    ValueId w0 = g.param("conv0.weight", {Shape{4, 3, 1, 1}});
    ValueId w = g.param("conv.weight", {Shape{4, 4, 3, 3}});
    ValueId labels = g.input("labels", {Shape{2}, DType::i32});
    ops::BatchNormParams p;
    if (affine) p.gamma = g.param("bn.weight", {Shape{4}});
    ValueId b = ops::batch_norm(g, ops::conv2d(g, x, w0, {}, "conv0"), p, {}, "bn");
    ValueId r = ops::relu(g, b, "relu");
    ValueId y = ops::conv2d(g, r, w, {.pad = 1}, "conv");
    ValueId loss = ops::softmax_cross_entropy(g, ops::global_avg_pool(g, y), labels);
    graph::backward(g, loss, std::vector<ValueId>{w0, w});
    CHECK(backward_nodes_of(g, "relu_recompute") == (affine ? 0 : 1));
    CHECK((backward_reads(g, {r}) == 0) == !affine);
  }
}

TEST_CASE("a crop of a relu (a factorized reduce's shift) is recomputed with the relu it reads") {
  Graph g;
  ValueId x = g.input("x", {Shape{2, 3, 6, 6}});
  ValueId w = g.param("conv.weight", {Shape{4, 3, 1, 1}});
  ValueId w2 = g.param("conv2.weight", {Shape{4, 3, 1, 1}});
  ValueId labels = g.input("labels", {Shape{2}, DType::i32});
  ValueId r = ops::relu(g, x, "relu");
  ValueId shifted = ops::crop(g, r, 1, 1, 5, 5, "shift");
  ValueId a = ops::conv2d(g, r, w, {.stride = 2}, "conv1");
  ValueId b = ops::conv2d(g, shifted, w2, {.stride = 2}, "conv2");
  const ValueId both[] = {a, b};
  ValueId loss = ops::softmax_cross_entropy(g, ops::global_avg_pool(g, ops::concat(g, both)), labels);
  graph::backward(g, loss, std::vector<ValueId>{w, w2});
  CHECK(backward_nodes_of(g, "crop_recompute") == 1);
  CHECK(backward_nodes_of(g, "relu_recompute") == 1);  // one copy serves conv1's weight gradient and the crop's copy
  CHECK(backward_reads(g, {r, shifted}) == 0);
}

TEST_CASE("a depthwise conv feeding a weight gradient is recomputed, a dense one is kept") {
  for (bool depthwise : {true, false}) {
    CAPTURE(depthwise);
    Graph g;
    ValueId x = g.input("x", {Shape{2, 4, 6, 6}});
    ValueId w1 = g.param("conv1.weight", {Shape{4, depthwise ? 1 : 4, 3, 3}});
    ValueId w2 = g.param("conv2.weight", {Shape{4, 4, 1, 1}});
    ValueId labels = g.input("labels", {Shape{2}, DType::i32});
    ValueId h = ops::conv2d(g, ops::relu(g, x), w1, {.pad = 1, .groups = depthwise ? 4 : 1}, "conv1");
    ValueId y = ops::conv2d(g, h, w2, {}, "conv2");
    ValueId loss = ops::softmax_cross_entropy(g, ops::global_avg_pool(g, y), labels);
    graph::backward(g, loss, std::vector<ValueId>{w1, w2});
    CHECK(backward_nodes_of(g, "conv2d_recompute") == (depthwise ? 1 : 0));
    CHECK((backward_reads(g, {h}) == 0) == depthwise);
  }
}

TEST_CASE("every compiled plan is valid and runs in its arena, in-place ops share storage") {
  Graph g;
  Cnn n = small_cnn(g, 8, 4, true);
  graph::Program p = training_program(g, n);
  REQUIRE_NOTHROW(planner::check_plan(p.buffers(), p.plan()));
  CHECK(p.arena_bytes() >= p.lower_bound_bytes());
  CHECK(double(p.arena_bytes()) <= 1.05 * double(p.lower_bound_bytes()));
  CHECK(p.lower_bound_bytes() <= p.build_order_lower_bound_bytes());
  int shared = 0;
  for (const auto& b : p.buffers()) shared += b.may_share_with >= 0;
  CHECK(shared > 0);
}

TEST_CASE("the memory-aware order lowers the peak where the build order is wasteful") {
  // Build order: four big branches of x first, then each is reduced to a small value.
  // Running each reduction right after its branch keeps one big value live, not four.
  Graph g;
  ValueId x = g.input("x", {Shape{1, 64, 32, 32}});
  std::vector<ValueId> big, small;
  for (int i = 0; i < 4; ++i) big.push_back(ops::scale(g, x, float(i + 1), "big"));
  for (int i = 0; i < 4; ++i) small.push_back(ops::global_avg_pool(g, big[size_t(i)], "small"));
  ValueId total = ops::sum(g, small, "total");
  graph::Program reordered = graph::compile(g, {.outputs = {total}});
  graph::Program build = graph::compile(g, {.outputs = {total}, .reorder = false});
  const size_t big_bytes = 64 * 32 * 32 * 4;
  CHECK(build.lower_bound_bytes() >= 4 * big_bytes);
  CHECK(reordered.lower_bound_bytes() < 2 * big_bytes + 4096);
  CHECK(reordered.build_order_lower_bound_bytes() == build.lower_bound_bytes());
  // Same results either way.
  ParamStore ps;
  Buffer xb(big_bytes);
  Rng rng(1);
  fill_random(Tensor(xb.data(), Shape{1, 64, 32, 32}), rng);
  Arena a1(reordered.arena_bytes()), a2(build.arena_bytes());
  reordered.run(a1, ps, {{x, Tensor(xb.data(), Shape{1, 64, 32, 32})}});
  build.run(a2, ps, {{x, Tensor(xb.data(), Shape{1, 64, 32, 32})}});
  Tensor r1 = reordered.output(a1, total), r2 = build.output(a2, total);
  for (int64_t i = 0; i < r1.numel(); ++i) CHECK(r1.f32()[i] == Approx(r2.f32()[i]).epsilon(1e-5));
}

TEST_CASE("Program::run allocates nothing once bound (CNN step and a search step)") {
  set_num_threads(2);
  Graph g;
  Cnn n = small_cnn(g, 8, 4, true);
  graph::Program p = training_program(g, n);
  ParamStore ps;
  Rng rng(2);
  nas::init_params(ps, g, rng);
  Arena arena(p.arena_bytes());
  Buffer xb(8 * 64 * 4), yb(8 * 4);
  Tensor x(xb.data(), Shape{8, 1, 8, 8}), y(yb.data(), Shape{8}, DType::i32);
  quadrant_task(rng, x, y);
  p.run(arena, ps, {{n.x, x}, {n.labels, y}});  // binds parameters, warms kernel scratch
  {
    test::AllocCounter count;
    p.run(arena, ps, {{n.x, x}, {n.labels, y}});
    p.run(arena, ps, {{n.x, x}, {n.labels, y}});
    const int64_t news = count.allocations();
    CHECK(news == 0);
  }

  nas::SearchSpace s;
  s.channels = 4;
  s.cells = 2;
  s.reductions = {1};
  s.nodes = 2;
  s.height = s.width = 8;
  s.classes = 4;
  Graph sg;
  nas::SearchNet net = nas::emit_search_net(sg, s, 8);
  std::vector<ValueId> wrt;
  for (size_t v = 0; v < sg.num_values(); ++v)
    if (sg.values()[v].kind == graph::ValueKind::param) wrt.push_back(ValueId(v));
  auto grads = graph::backward(sg, net.loss, wrt);
  graph::CompileOptions o{.outputs = {net.loss}};
  for (size_t i = 0; i < wrt.size(); ++i) o.param_grads.emplace_back(wrt[i], grads[i]);
  graph::Program sp = graph::compile(sg, o);
  ParamStore sps;
  nas::init_params(sps, sg, rng);
  Arena sa(sp.arena_bytes());
  sp.run(sa, sps, {{net.x, x}, {net.labels, y}});
  {
    test::AllocCounter count;
    sp.run(sa, sps, {{net.x, x}, {net.labels, y}});
    const int64_t news = count.allocations();
    CHECK(news == 0);
  }

  // A whole step-by-step pass (phases, recompute forwards, hand-on of gradients) with
  // micro-batches allocates nothing either.
  const nas::StepConfig sbs{.mode = nas::Mode::ops_pairs_sbs, .sbs = nas::SbsVariant::recompute, .split = 2};
  nas::StepGates gates(s, sbs);
  nas::GradientPass pass(s, sbs, 8, gates, ParamKind::weight, sps);
  graph::GateValues values(*gates.space());
  nas::ArchSampler sampler(s, {.k_grad = 2}, 3);
  nas::Sample sample = nas::full_sample(s);
  sampler.draw(sps, 0, 10, sample);
  gates.apply(sample, values);
  Arena pa(pass.arena_bytes());
  pass.run(pa, sps, x, y, &values);
  {
    test::AllocCounter count;
    sampler.draw(sps, 1, 10, sample);  // another sample: data for the same programs
    gates.apply(sample, values);
    pass.run(pa, sps, x, y, &values);
    const int64_t news = count.allocations();
    CHECK(news == 0);
  }
}

TEST_CASE("a small CNN learns a synthetic task, bit-for-bit repeatably at a fixed thread count") {
  auto train = [](int threads) {
    set_num_threads(threads);
    Graph g;
    Cnn n = small_cnn(g, 16, 4, true);
    graph::Program p = training_program(g, n);
    Graph ge;
    Cnn ne = small_cnn(ge, 16, 4, false);
    graph::Program pe = graph::compile(ge, {.outputs = {ne.logits}});
    ParamStore ps;
    Rng rng(5);
    nas::init_params(ps, g, rng);
    graph::Sgd sgd({.lr = 0.1f, .momentum = 0.9f});
    sgd.add_params(ps, ParamKind::weight);
    Arena arena(std::max(p.arena_bytes(), pe.arena_bytes()));
    Buffer xb(16 * 64 * 4), yb(16 * 4);
    Tensor x(xb.data(), Shape{16, 1, 8, 8}), y(yb.data(), Shape{16}, DType::i32);
    for (int s = 0; s < 150; ++s) {
      quadrant_task(rng, x, y);
      ps.zero_grads();
      p.run(arena, ps, {{n.x, x}, {n.labels, y}});
      sgd.step(ps);
    }
    double acc = 0;
    for (int t = 0; t < 10; ++t) {
      quadrant_task(rng, x, y);
      pe.run(arena, ps, {{ne.x, x}});
      acc += nas::accuracy(pe.output(arena, ne.logits), y) / 10.0;
    }
    std::vector<float> w(ps.get("conv2.weight").f32(), ps.get("conv2.weight").f32() + ps.get("conv2.weight").numel());
    return std::make_pair(acc, w);
  };
  auto [acc1, w1] = train(2);
  auto [acc2, w2] = train(2);
  CHECK(acc1 >= 0.95);
  CHECK(w1 == w2);
  auto [acc3, w3] = train(1);
  // Kernels reduce in fixed chunks, so even another thread count gives the same bits.
  CHECK(w1 == w3);
  set_num_threads(2);
}

TEST_CASE("SGD, Adam, clipping and the cosine schedule match hand-computed values") {
  ParamStore ps;
  Tensor w = ps.add_weight("w", Shape{2});
  w.f32()[0] = 1.0f;
  w.f32()[1] = -2.0f;
  graph::Sgd sgd({.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .name = "sgd"});
  sgd.add_param(ps, "w");
  ps.grad("w").f32()[0] = 0.5f;
  ps.grad("w").f32()[1] = 1.0f;
  sgd.step(ps);  // m = g + wd*p; p -= lr*m
  CHECK(w.f32()[0] == Approx(1.0f - 0.1f * (0.5f + 0.01f)));
  CHECK(w.f32()[1] == Approx(-2.0f - 0.1f * (1.0f - 0.02f)));
  sgd.step(ps);  // m = 0.9*m + g'
  float g0 = 0.5f + 0.01f * (1.0f - 0.1f * 0.51f);
  CHECK(w.f32()[0] == Approx(1.0f - 0.1f * 0.51f - 0.1f * (0.9f * 0.51f + g0)));

  ParamStore pa;
  Tensor v = pa.add_weight("v", Shape{1});
  v.f32()[0] = 0.5f;
  graph::Adam adam({.lr = 0.01f, .beta1 = 0.0f, .beta2 = 0.999f, .name = "adam"});
  adam.add_param(pa, "v");
  pa.grad("v").f32()[0] = 2.0f;
  adam.step(pa);  // first step: update = lr * g / (|g| + eps) = lr
  CHECK(v.f32()[0] == Approx(0.49f).epsilon(1e-6));
  pa.grad("v").f32()[0] = -1.0f;
  adam.step(pa);  // m = -1, v = 0.999*0.001*4 + 0.001*1, bias-corrected
  double vv = (0.999 * 0.001 * 4 + 0.001 * 1) / (1 - 0.999 * 0.999);
  CHECK(v.f32()[0] == Approx(0.49 + 0.01 * 1.0 / (std::sqrt(vv) + 1e-8)).epsilon(1e-5));
  // beta1 = 0 keeps no first moment (it is the gradient); beta1 > 0 keeps and uses one.
  CHECK(pa.bytes(ParamKind::state) == 2 * sizeof(float));  // v and the step count
  ParamStore pb;
  Tensor u = pb.add_weight("u", Shape{1});
  u.f32()[0] = 0.5f;
  graph::Adam adam9({.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .name = "adam9"});
  adam9.add_param(pb, "u");
  CHECK(pb.bytes(ParamKind::state) == 3 * sizeof(float));
  pb.grad("u").f32()[0] = 2.0f;
  adam9.step(pb);  // bias correction makes the first step lr * sign(g) again
  CHECK(u.f32()[0] == Approx(0.49f).epsilon(1e-6));
  pb.grad("u").f32()[0] = -1.0f;
  adam9.step(pb);  // m = 0.9*0.2 - 0.1 = 0.08, m_hat = 0.08 / 0.19
  const double mhat = (0.9 * 0.1 * 2 + 0.1 * -1) / (1 - 0.81);
  CHECK(u.f32()[0] == Approx(0.49 - 0.01 * mhat / (std::sqrt(vv) + 1e-8)).epsilon(1e-5));

  ps.grad("w").f32()[0] = 3.0f;
  ps.grad("w").f32()[1] = 4.0f;
  CHECK(graph::clip_grad_norm(ps, {"w"}, 1.0) == Approx(5.0));
  CHECK(graph::grad_norm(ps, {"w"}) == Approx(1.0).epsilon(1e-5));
  CHECK(graph::cosine_lr(0.1f, 0.0f, 0, 11) == Approx(0.1f));
  CHECK(graph::cosine_lr(0.1f, 0.0f, 5, 11) == Approx(0.05f));
  CHECK(graph::cosine_lr(0.1f, 0.0f, 10, 11) == Approx(0.0f).margin(1e-7));
}

TEST_CASE("Adam with its second moment in bf16: half the state, the same moment in expectation, the same bits on every run") {
  const int64_t n = 4096;
  // Gradients of scales from 1e-4 to 10 (element i has scale 10^(-4 + 5 i / n)) and a
  // random sign and size each step, as a search's weights see.
  auto run = [&](DType moment, int threads, ParamStore& ps) {
    set_num_threads(threads);
    Tensor w = ps.add_weight("w", Shape{n});
    graph::Adam adam({.lr = 1e-3f, .beta1 = 0.0f, .beta2 = 0.999f, .weight_decay = 3e-4f, .second_moment = moment,
                      .name = "adam"});
    adam.add_param(ps, "w");
    Rng rng(11);
    for (int64_t i = 0; i < n; ++i) w.f32()[i] = rng.normal();
    for (int s = 0; s < 400; ++s) {
      for (int64_t i = 0; i < n; ++i)
        ps.grad("w").f32()[i] = std::pow(10.0f, -4.0f + 5.0f * float(i) / float(n)) * rng.normal();
      adam.step(ps);
    }
    set_num_threads(2);
  };
  ParamStore f32, bf16, again, one_thread;
  run(DType::f32, 2, f32);
  run(DType::bf16, 2, bf16);
  CHECK(f32.bytes(ParamKind::state) == n * 4 + 4);
  CHECK(bf16.bytes(ParamKind::state) == n * 2 + 4);  // v in bf16, the step count in f32
  REQUIRE(bf16.get("adam.v/w").dtype() == DType::bf16);

  // The stored moment follows the f32 one: unbiased over the elements (stochastic
  // rounding), within a few percent each. Rounded to nearest instead, a moment moves by
  // 0.1% a step, under half a bf16 step, and stalls: the test below would fail.
  const float* vf = f32.get("adam.v/w").f32();
  const uint16_t* vh = bf16.get("adam.v/w").bf16();
  double mean_ratio = 0, worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = bf16_to_f32(vh[i]) / double(vf[i]);
    mean_ratio += r / double(n);
    worst = std::max(worst, std::abs(r - 1.0));
  }
  CHECK(mean_ratio == Approx(1.0).margin(0.005));
  CHECK(worst < 0.15);
  // So the weights take nearly the same path: their displacement differs by a few
  // percent of its size.
  const float* wf = f32.get("w").f32();
  const float* wb = bf16.get("w").f32();
  Rng init(11);
  double moved = 0, apart = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double w0 = init.normal();
    moved += (wf[i] - w0) * (wf[i] - w0);
    apart += double(wb[i] - wf[i]) * (wb[i] - wf[i]);
  }
  CHECK(std::sqrt(apart) < 0.05 * std::sqrt(moved));
  CHECK(std::sqrt(apart) > 0.0);  // a different optimizer, not the f32 one by mistake

  // The rounding draws are a function of (parameter, step, element): the same bits on a
  // second run and under another thread count.
  run(DType::bf16, 2, again);
  run(DType::bf16, 1, one_thread);
  for (ParamStore* other : {&again, &one_thread})
    for (const char* name : {"w", "adam.v/w"}) {
      CAPTURE(name);
      CHECK(std::memcmp(other->get(name).data(), bf16.get(name).data(), bf16.get(name).bytes()) == 0);
    }
  CHECK_THROWS_WITH(graph::Adam({.second_moment = DType::i32}), Catch::Contains("f32 or bf16"));
}

TEST_CASE("Adam with a factored second moment: Adam's step when the squared gradient is of rank one, rows plus columns of state, clipped updates, the same bits under any thread count") {
  // G_ij = a_i b_j makes G^2 of rank one, so R_i C_j / sum(R) is v exactly, and the
  // update is Adam's (its RMS stays under 1 here, so the clipping does not act).
  const int64_t rows = 4, cols = 6;
  const float a[rows] = {0.5f, -2.0f, 1.0f, 0.25f}, b[cols] = {1.0f, -0.1f, 3.0f, 0.7f, -1.5f, 0.02f};
  ParamStore pf, pa;
  Tensor wf = pf.add_weight("w", Shape{rows, cols / 2, 2}), wa = pa.add_weight("w", Shape{rows, cols / 2, 2});
  for (int64_t i = 0; i < rows * cols; ++i) wf.f32()[i] = wa.f32()[i] = 0.1f * float(i % 7) - 0.3f;
  pf.add_weight("bias", Shape{rows});
  graph::Adam factored({.lr = 0.01f, .beta1 = 0.0f, .beta2 = 0.999f, .factored = true, .name = "adam"});
  graph::Adam adam({.lr = 0.01f, .beta1 = 0.0f, .beta2 = 0.999f, .name = "adam"});
  factored.add_param(pf, "w");
  factored.add_param(pf, "bias");
  adam.add_param(pa, "w");
  // Rows plus columns (a 3-D weight is seen as shape[0] rows) and a step count; the
  // one-dimensional bias keeps a whole v.
  CHECK(pf.bytes(ParamKind::state) == (rows + cols + 1) * 4 + (rows + 1) * 4);
  CHECK(pf.get("adam.v_rows/w").numel() == rows);
  CHECK(pf.get("adam.v_cols/w").numel() == cols);
  CHECK(pf.get("adam.v/bias").numel() == rows);
  for (float scale : {1.0f, 0.5f, 0.3f}) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        pf.grad("w").f32()[r * cols + c] = pa.grad("w").f32()[r * cols + c] = scale * a[r] * b[c];
    factored.step(pf);
    adam.step(pa);
  }
  for (int64_t i = 0; i < rows * cols; ++i) CHECK(wf.f32()[i] == Approx(wa.f32()[i]).epsilon(1e-5));

  // Not of rank one: one large element among small ones. The estimated v of an element
  // outside its row and column, R_r C_c / sum(R), is then far below its square (g / sqrt(v)
  // reaches about 800 here, numpy's figure); the clipping holds the update's RMS over
  // the weight at lr.
  ParamStore pc;
  Tensor w = pc.add_weight("w", Shape{8, 8});
  graph::Adam clipped({.lr = 0.01f, .beta1 = 0.0f, .beta2 = 0.999f, .factored = true, .name = "adam"});
  clipped.add_param(pc, "w");
  for (int64_t i = 0; i < 64; ++i) pc.grad("w").f32()[i] = i == 9 ? 100.0f : 0.01f * float(1 + i % 3);
  clipped.step(pc);
  double sq = 0;
  for (int64_t i = 0; i < 64; ++i) sq += double(w.f32()[i]) * w.f32()[i];
  CHECK(std::sqrt(sq / 64) == Approx(0.01).epsilon(1e-4));
  double largest = 0;
  for (int64_t i = 0; i < 64; ++i) largest = std::max(largest, double(std::abs(w.f32()[i])));
  CHECK(largest > 0.01);  // unequal moves (about 1.6 lr at most), not a plain sign step
  CHECK(largest < 0.02);

  // Long runs with random gradients: the same bits with one thread and with two.
  auto run = [&](int threads, ParamStore& ps) {
    set_num_threads(threads);
    Tensor x = ps.add_weight("x", Shape{64, 16, 3, 3});
    graph::Adam opt({.lr = 1e-3f, .beta1 = 0.0f, .beta2 = 0.999f, .weight_decay = 3e-4f, .factored = true,
                     .name = "adam"});
    opt.add_param(ps, "x");
    Rng rng(5);
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
    for (int s = 0; s < 20; ++s) {
      for (int64_t i = 0; i < x.numel(); ++i) ps.grad("x").f32()[i] = rng.normal() * float(1 + i % 5);
      opt.step(ps);
    }
    set_num_threads(2);
  };
  ParamStore one, two;
  run(1, one);
  run(2, two);
  for (const char* name : {"x", "adam.v_rows/x", "adam.v_cols/x"}) {
    CAPTURE(name);
    CHECK(std::memcmp(one.get(name).data(), two.get(name).data(), one.get(name).bytes()) == 0);
  }
  CHECK_THROWS_WITH(graph::Adam({.beta1 = 0.9f, .factored = true}), Catch::Contains("beta1 = 0"));
}

TEST_CASE("a parameter or element without a gradient is left untouched: no decay, no moment, no step count") {
  for (bool adam : {true, false}) {
    CAPTURE(adam);
    ParamStore ps;
    Tensor a = ps.add_weight("a", Shape{2});
    Tensor b = ps.add_weight("b", Shape{3});
    for (int i = 0; i < 2; ++i) a.f32()[i] = 1.0f + float(i);
    for (int i = 0; i < 3; ++i) b.f32()[i] = -1.0f - float(i);
    std::unique_ptr<graph::Optimizer> opt;
    if (adam)
      opt = std::make_unique<graph::Adam>(graph::AdamOptions{.lr = 0.1f, .beta1 = 0.5f, .weight_decay = 0.1f});
    else
      opt = std::make_unique<graph::Sgd>(graph::SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f});
    opt->add_param(ps, "a");
    uint8_t mask[3] = {1, 0, 1};
    opt->add_param(ps, "b", mask);
    const std::vector<float> state_before = [&] {
      std::vector<float> v;
      for (const auto& e : ps.entries())
        if (e->kind == ParamKind::state) v.insert(v.end(), e->tensor.f32(), e->tensor.f32() + e->tensor.numel());
      return v;
    }();
    ps.grad("a").f32()[0] = 0.5f;
    for (int i = 0; i < 3; ++i) ps.grad("b").f32()[i] = 0.25f;
    opt->set_trained(0, false);  // "a" got no gradient this step
    opt->step(ps);
    CHECK(a.f32()[0] == 1.0f);  // no step, no weight decay
    CHECK(a.f32()[1] == 2.0f);
    CHECK(b.f32()[0] != -1.0f);
    CHECK(b.f32()[1] == -2.0f);  // masked element: untouched
    CHECK(b.f32()[2] != -3.0f);
    // The state of "a" and of b[1] did not move.
    std::vector<float> after;
    for (const auto& e : ps.entries()) {
      if (e->kind != ParamKind::state) continue;
      const bool of_a = e->name.find("/a") != std::string::npos;
      for (int64_t i = 0; i < e->tensor.numel(); ++i) {
        if (of_a) CHECK(e->tensor.f32()[i] == 0.0f);
        if (!of_a && i == 1 && e->tensor.numel() == 3) CHECK(e->tensor.f32()[i] == 0.0f);
      }
    }
    // A gradient without storage counts as none, too.
    opt->set_trained(0, true);
    ps.set_grad_view("a", nullptr);
    opt->step(ps);
    CHECK(a.f32()[0] == 1.0f);
    CHECK(state_before.size() > 0);
  }
}
