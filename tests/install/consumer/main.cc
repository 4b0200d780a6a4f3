// An out-of-tree user of the installed onnas library: builds a small network as a
// graph, differentiates it, plans its memory, runs one training step and checks that
// the loss falls on the same batch after it.
#include <cmath>
#include <cstdio>
#include <vector>

#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/optimizer.h"
#include "ops/ops.h"
#include "runtime/rng.h"

using namespace onnas;

int main() try {
  constexpr int64_t kBatch = 8, kClasses = 4;
  graph::Graph g;
  const graph::ValueId x = g.input("x", {Shape{kBatch, 1, 8, 8}});
  const graph::ValueId labels = g.input("labels", {Shape{kBatch}, DType::i32});
  const graph::ValueId w = g.param("conv.weight", {Shape{8, 1, 3, 3}});
  const graph::ValueId fc_w = g.param("fc.weight", {Shape{kClasses, 8}});
  const graph::ValueId fc_b = g.param("fc.bias", {Shape{kClasses}});
  graph::ValueId y = ops::relu(g, ops::conv2d(g, x, w, {.pad = 1}));
  const graph::ValueId logits = ops::linear(g, ops::global_avg_pool(g, y), fc_w, fc_b, "fc");
  const graph::ValueId loss = ops::softmax_cross_entropy(g, logits, labels);

  const std::vector<graph::ValueId> weights = {w, fc_w, fc_b};
  const std::vector<graph::ValueId> grads = graph::backward(g, loss, weights);  // appends the backward
  graph::CompileOptions options{.outputs = {loss}};
  for (size_t i = 0; i < weights.size(); ++i) options.param_grads.emplace_back(weights[i], grads[i]);
  graph::Program step = graph::compile(g, options);                             // ordered and planned
  std::printf("planned arena %zu bytes (lower bound %zu)\n", step.arena_bytes(), step.lower_bound_bytes());

  ParamStore params;
  Rng rng(7);
  for (graph::ValueId v : weights) {
    Tensor t = params.add_weight(g.name(v), g.shape(v));
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.5f * (2 * rng.uniform() - 1);
  }
  std::vector<float> images(kBatch * 64);
  std::vector<int32_t> targets(kBatch);
  for (int64_t i = 0; i < kBatch; ++i) {
    targets[size_t(i)] = int32_t(i % kClasses);
    for (int64_t p = 0; p < 64; ++p) images[size_t(i * 64 + p)] = float((p * (i % kClasses + 1)) % 7) / 7.0f;
  }
  Tensor xt(images.data(), Shape{kBatch, 1, 8, 8}), yt(targets.data(), Shape{kBatch}, DType::i32);
  Arena arena(step.arena_bytes());
  graph::Sgd sgd({.lr = 0.5f});
  sgd.add_params(params, ParamKind::weight);

  params.zero_grads();
  step.run(arena, params, {{x, xt}, {labels, yt}});
  const float before = step.output(arena, loss).f32()[0];
  sgd.step(params);
  params.zero_grads();
  step.run(arena, params, {{x, xt}, {labels, yt}});
  const float after = step.output(arena, loss).f32()[0];
  std::printf("loss %.4f -> %.4f after one step\n", before, after);
  if (!std::isfinite(after) || !(after < before)) {
    std::fprintf(stderr, "consumer: the step did not lower the loss\n");
    return 1;
  }
  std::printf("consumer: ok\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "consumer: %s\n", e.what());
  return 1;
}
