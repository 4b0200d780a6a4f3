// Ops working together in the engine: a stop-gradient region (zero gradient behind
// it, its activations dead before the backward starts, the identity done in place),
// a small DARTS-like network checked end to end, and the unseeded scalar-loss form
// of backward against the closed-form cross-entropy gradient.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/op.h"
#include "ops/ops.h"
#include "runtime/kernels/reference.h"
#include "tests/ops/gradcheck.h"

using namespace onnas;
using graph::Graph;
using graph::ValueId;
using onnas::test::Fill;
using onnas::test::OpTester;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("a stop-gradient region gets zero gradient and keeps no activation for the backward",
          "[ops][stop_gradient]") {
  OpTester t(47);
  Graph& g = t.graph();
  const ValueId x = t.input("x", Shape{2, 3, 8, 8});
  const ValueId w1 = t.weight("frozen.conv.weight", Shape{4, 3, 3, 3});
  const ValueId w2 = t.weight("head.conv.weight", Shape{4, 4, 3, 3});
  const ValueId gamma = t.weight("frozen.bn.weight", Shape{4}, Fill::positive);
  ValueId region_out;
  {
    Graph::Scope s(g, "frozen");
    const ValueId c = ops::conv2d(g, x, w1, {.pad = 1});
    region_out = ops::relu(g, ops::batch_norm(g, c, {.gamma = gamma}));
  }
  const ValueId cut = ops::stop_gradient(g, region_out);
  ValueId y;
  {
    Graph::Scope s(g, "head");
    y = ops::conv2d(g, cut, w2, {.pad = 1});
  }
  t.expect_zero_gradient(x).expect_zero_gradient(w1).expect_zero_gradient(gamma).check_gradients(y);
  CHECK(t.gradient_value(x) == graph::kNoValue);
  CHECK(t.gradient_value(w1) == graph::kNoValue);
  CHECK(t.gradient_value(gamma) == graph::kNoValue);
  REQUIRE(t.gradient_value(w2) != graph::kNoValue);

  const graph::Program& p = t.program();
  std::ptrdiff_t first_backward = 0;
  while (size_t(first_backward) < p.num_steps() && !p.step_backward(size_t(first_backward))) ++first_backward;
  REQUIRE(size_t(first_backward) < p.num_steps());

  SECTION("no backward node reads a value of the region, and none was emitted for it") {
    for (size_t step = 0; step < p.num_steps(); ++step) {
      if (!p.step_backward(step)) continue;
      CHECK_FALSE(starts_with(std::string(p.step_name(step)), "grad/frozen."));
      for (ValueId in : p.step_inputs(step)) {
        INFO(p.step_name(step) << " reads " << p.name(in));
        CHECK_FALSE(starts_with(std::string(p.name(in)), "frozen."));
      }
    }
  }
  SECTION("every buffer of the region dies before the first backward step") {
    int region_buffers = 0;
    for (const planner::BufferRequest& b : p.buffers()) {
      if (!starts_with(b.name, "frozen.")) continue;
      ++region_buffers;
      INFO(b.name << " lives steps " << b.first_step << ".." << b.last_step << ", backward starts at "
                  << first_backward);
      CHECK(b.last_step < first_backward);
    }
    CHECK(region_buffers >= 3);  // conv, bn (y, mean, rstd), relu
  }
  SECTION("the identity takes over its input's storage") {
    const auto& buffers = p.buffers();
    const auto sg = std::find_if(buffers.begin(), buffers.end(),
                                 [](const planner::BufferRequest& b) { return b.name == "stop_gradient"; });
    REQUIRE(sg != buffers.end());
    REQUIRE(sg->may_share_with >= 0);
    CHECK(buffers[size_t(sg->may_share_with)].name == "frozen.relu");
  }
}

TEST_CASE("a small DARTS-like network: gradients of every weight and of the architecture weights",
          "[ops][grad][network]") {
  // stem conv -> bn -> a mixed op (softmax(alpha)-weighted sum of a separable
  // conv, an average pool and the identity) -> concat with the stem -> global pool
  // -> classifier -> cross-entropy. Smooth everywhere (no ReLU, no max), so finite
  // differences need no kink masking.
  OpTester t(53);
  Graph& g = t.graph();
  const ValueId images = t.input("images", Shape{2, 3, 6, 6});
  const ValueId labels = t.labels("labels", 2, 5);
  const ValueId stem_w = t.weight("stem.conv.weight", Shape{4, 3, 3, 3});
  const ValueId dw = t.weight("cell.sep.dw.weight", Shape{4, 1, 3, 3});
  const ValueId pw = t.weight("cell.sep.pw.weight", Shape{4, 4, 1, 1});
  const ValueId alpha = t.weight("alpha", Shape{3}, Fill::normal, ParamKind::arch);
  const ValueId fc_w = t.weight("classifier.weight", Shape{5, 8});
  const ValueId fc_b = t.weight("classifier.bias", Shape{5});
  const ValueId stem = ops::batch_norm(g, ops::conv2d(g, images, stem_w, {.pad = 1}, "stem.conv"),
                                       {.gamma = t.weight("stem.bn.weight", Shape{4}, Fill::positive),
                                        .beta = t.weight("stem.bn.bias", Shape{4})},
                                       {}, "stem.bn");
  const ValueId sep = ops::conv2d(g, ops::conv2d(g, stem, dw, {.pad = 1, .groups = 4}, "cell.sep.dw"), pw, {},
                                  "cell.sep.pw");
  const ValueId pool = ops::avg_pool2d(g, stem, {}, "cell.avg_pool");
  const ValueId candidates[] = {sep, pool, stem};
  const int64_t indices[] = {0, 1, 2};
  const ValueId mixed = ops::weighted_sum(g, candidates, ops::softmax(g, alpha, "alpha.softmax"), indices, "cell.mix");
  const ValueId parts[] = {stem, mixed};
  const ValueId features = ops::global_avg_pool(g, ops::concat(g, parts, "cell.concat"), "gap");
  const ValueId loss = ops::softmax_cross_entropy(g, ops::linear(g, features, fc_w, fc_b, "classifier"), labels);
  t.step(1e-2).check_gradients(loss);
}

TEST_CASE("backward from a scalar loss seeds d loss = 1", "[ops][grad][autodiff]") {
  // logits = x w^T, loss = mean cross-entropy: d w = (probs - onehot)^T x / N.
  Graph g;
  ParamStore params;
  const int64_t N = 4, I = 3, K = 5;
  Rng rng(59);
  Tensor w = params.add_weight("fc.weight", Shape{K, I});
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = rng.normal();
  Buffer x_mem(size_t(N * I) * 4), y_mem(size_t(N) * 4);
  Tensor xt(x_mem.data(), Shape{N, I}), yt(y_mem.data(), Shape{N}, DType::i32);
  for (int64_t i = 0; i < xt.numel(); ++i) xt.f32()[i] = rng.normal();
  for (int64_t i = 0; i < N; ++i) yt.i32()[i] = int32_t(rng.uniform_int(K));

  const ValueId x = g.input("x", {Shape{N, I}});
  const ValueId labels = g.input("labels", {Shape{N}, DType::i32});
  const ValueId wv = g.param("fc.weight", {Shape{K, I}});
  const ValueId loss = ops::softmax_cross_entropy(g, ops::linear(g, x, wv, graph::kNoValue, "fc"), labels);
  const std::vector<ValueId> grads = graph::backward(g, loss, {wv});
  graph::CompileOptions options;
  options.outputs = {loss};
  options.param_grads = {{wv, grads[0]}};
  graph::Program p = graph::compile(g, options);
  Arena arena(std::max<size_t>(p.arena_bytes(), kAlignment));
  params.zero_grads();
  p.run(arena, params, {{x, xt}, {labels, yt}});

  std::vector<double> logits(size_t(N * K)), probs(size_t(N * K)), dlogits(size_t(N * K)), dw(size_t(K * I));
  const std::vector<double> xd(xt.f32(), xt.f32() + xt.numel()), wd(w.f32(), w.f32() + w.numel());
  kernels::ref::linear_forward<double>(N, I, K, xd.data(), wd.data(), nullptr, logits.data());
  const double want_loss = kernels::ref::softmax_xent_forward<double>(N, K, logits.data(), yt.i32(), probs.data());
  kernels::ref::softmax_xent_backward<double>(N, K, probs.data(), yt.i32(), 1.0, dlogits.data());
  kernels::ref::linear_backward<double>(N, I, K, xd.data(), wd.data(), dlogits.data(), nullptr, dw.data(), nullptr);

  CHECK(p.output(arena, loss).f32()[0] == Approx(want_loss).epsilon(1e-5));
  const Tensor got = params.grad("fc.weight");
  for (int64_t i = 0; i < got.numel(); ++i) CHECK(got.f32()[i] == Approx(dw[size_t(i)]).margin(1e-5));
}

TEST_CASE("mask_gradient is the identity forward and zeroes the masked gradient entries",
          "[ops][grad][mask_gradient]") {
  // L = xent(softmax(mask(a)) w^T): unmasked entries get exactly the plain softmax
  // gradient (the softmax still couples them to the masked ones), masked entries 0.
  const int64_t R = 2, K = 4;
  const std::vector<uint8_t> mask = {1, 0, 1, 1, 0, 0, 1, 0};
  Rng rng(61);
  ParamStore params;
  Tensor a = params.add_weight("alpha", Shape{R, K}, ParamKind::arch);
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] = rng.normal();
  Tensor w = params.add_weight("fc.weight", Shape{3, K});
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = rng.normal();
  Buffer y_mem(size_t(R) * 4);
  Tensor yt(y_mem.data(), Shape{R}, DType::i32);
  yt.i32()[0] = 2;
  yt.i32()[1] = 0;

  auto gradient = [&](bool masked, std::vector<float>& probs) {
    Graph g;
    const ValueId av = g.param("alpha", {Shape{R, K}});
    const ValueId labels = g.input("labels", {Shape{R}, DType::i32});
    const ValueId wv = g.param("fc.weight", {Shape{3, K}});
    const ValueId in = masked ? ops::mask_gradient(g, av, mask) : av;
    const ValueId p = ops::softmax(g, in);
    const ValueId loss = ops::softmax_cross_entropy(g, ops::linear(g, p, wv, graph::kNoValue, "fc"), labels);
    const std::vector<ValueId> grads = graph::backward(g, loss, {av});
    graph::CompileOptions options;
    options.outputs = {p};
    options.param_grads = {{av, grads[0]}};
    graph::Program prog = graph::compile(g, options);
    Arena arena(std::max<size_t>(prog.arena_bytes(), kAlignment));
    params.zero_grads();
    prog.run(arena, params, {{labels, yt}});
    const Tensor pt = prog.output(arena, p);
    probs.assign(pt.f32(), pt.f32() + pt.numel());
    const Tensor d = params.grad("alpha");
    return std::vector<float>(d.f32(), d.f32() + d.numel());
  };
  std::vector<float> plain_probs, masked_probs;
  const std::vector<float> plain = gradient(false, plain_probs);
  const std::vector<float> masked = gradient(true, masked_probs);
  CHECK(plain_probs == masked_probs);
  for (size_t i = 0; i < mask.size(); ++i) {
    INFO("entry " << i);
    CHECK(plain[i] != 0.0f);
    CHECK(masked[i] == (mask[i] ? plain[i] : 0.0f));
  }
  Graph g;
  const ValueId av = g.param("alpha", {Shape{R, K}});
  CHECK_THROWS_WITH(ops::mask_gradient(g, av, {1, 0, 1}), Catch::Contains("mask has 3 entries"));
}
