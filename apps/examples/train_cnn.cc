// A first look at the onnas C++ API: build a small CNN as a graph, differentiate it,
// compile it into a planned program and train it on Fashion-MNIST.
//
//   build/apps/example_train_cnn [epochs=3] [batch=64] [threads=all]
//
// conv3x3(1->32) BN ReLU maxpool/2 -> conv3x3(32->64) BN ReLU maxpool/2 ->
// conv3x3(64->128) BN ReLU -> global average pool -> linear(128->10).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "data/batch_sampler.h"
#include "data/fashion_mnist.h"
#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/optimizer.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "runtime/threading.h"

using namespace onnas;
using graph::Graph;
using graph::ValueId;

struct Cnn {
  ValueId x, labels, logits, loss;
  std::vector<ValueId> weights;
};

// One conv-BN-ReLU block; `training` picks batch statistics or the running ones.
ValueId block(Graph& g, Cnn& net, ValueId x, int64_t in, int64_t out, int index, bool training, bool pool) {
  std::string c = "conv" + std::to_string(index), b = "bn" + std::to_string(index);
  ValueId w = g.param(c + ".weight", {Shape{out, in, 3, 3}});
  ValueId gamma = g.param(b + ".weight", {Shape{out}});
  ValueId beta = g.param(b + ".bias", {Shape{out}});
  ValueId mean = g.param(b + ".running_mean", {Shape{out}});
  ValueId var = g.param(b + ".running_var", {Shape{out}});
  net.weights.insert(net.weights.end(), {w, gamma, beta});
  ValueId y = ops::conv2d(g, x, w, {.pad = 1}, c);
  y = ops::batch_norm(g, y, {gamma, beta, mean, var}, {.training = training}, b);
  y = ops::relu(g, y, "relu" + std::to_string(index));
  return pool ? ops::max_pool2d(g, y, {.kernel = 3, .stride = 2, .pad = 1}, "pool" + std::to_string(index)) : y;
}

Cnn build_cnn(Graph& g, int64_t batch, bool training) {
  Cnn net;
  net.x = g.input("x", {Shape{batch, 1, 28, 28}});
  net.labels = g.input("labels", {Shape{batch}, DType::i32});
  ValueId y = block(g, net, net.x, 1, 32, 1, training, true);
  y = block(g, net, y, 32, 64, 2, training, true);
  y = block(g, net, y, 64, 128, 3, training, false);
  y = ops::global_avg_pool(g, y, "gap");
  ValueId w = g.param("fc.weight", {Shape{10, 128}});
  ValueId b = g.param("fc.bias", {Shape{10}});
  net.weights.insert(net.weights.end(), {w, b});
  net.logits = ops::linear(g, y, w, b, "fc");
  net.loss = ops::softmax_cross_entropy(g, net.logits, net.labels, "loss");
  return net;
}

void init(ParamStore& ps, const Graph& g, Rng& rng) {
  for (const graph::Value& v : g.values()) {
    if (v.kind != graph::ValueKind::param) continue;
    const std::string& n = v.name;
    bool running = n.find("running") != std::string::npos;
    Tensor t = running ? ps.add(n, v.type.shape, ParamKind::buffer) : ps.add_weight(n, v.type.shape);
    bool bn = n.rfind("bn", 0) == 0;
    float fill = n.ends_with("running_var") || (bn && n.ends_with(".weight")) ? 1.0f : 0.0f;
    if (bn || running) {
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = fill;
    } else {  // PyTorch's default: U(+-1/sqrt(fan_in))
      int64_t fan_in = n == "fc.bias" ? 128 : v.type.shape.numel() / v.type.shape[0];
      float bound = 1.0f / std::sqrt(float(fan_in));
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = (2 * rng.uniform() - 1) * bound;
    }
  }
}

int main(int argc, char** argv) try {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 64;
  if (argc > 3) set_num_threads(std::atoi(argv[3]));

  data::Dataset train = data::load_fashion_mnist(data::kFashionMnistDir, data::Split::train);
  data::Dataset test = data::load_fashion_mnist(data::kFashionMnistDir, data::Split::test);
  data::ChannelStats stats = data::channel_stats(train);
  data::normalize(train, stats);
  data::normalize(test, stats);

  // Training graph: forward, then the backward appended by autodiff.
  Graph g;
  Cnn net = build_cnn(g, batch, /*training=*/true);
  std::vector<ValueId> grads = graph::backward(g, net.loss, net.weights);
  graph::CompileOptions opts{.outputs = {net.loss, net.logits}};
  for (size_t i = 0; i < grads.size(); ++i) opts.param_grads.emplace_back(net.weights[i], grads[i]);
  graph::Program step = graph::compile(g, opts);

  // Inference graph: running statistics, no backward.
  Graph ge;
  Cnn eval_net = build_cnn(ge, batch, /*training=*/false);
  graph::Program eval = graph::compile(ge, {.outputs = {eval_net.logits}});

  ParamStore params;
  Rng rng(1);
  init(params, g, rng);
  graph::Sgd sgd({.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f});
  sgd.add_params(params, ParamKind::weight);

  std::printf("planned arena: train step %.2f MiB (lower bound %.2f MiB), eval %.2f MiB; parameters %.2f MiB\n",
              step.arena_bytes() / 1048576.0, step.lower_bound_bytes() / 1048576.0, eval.arena_bytes() / 1048576.0,
              params.bytes() / 1048576.0);
  Arena arena(std::max(step.arena_bytes(), eval.arena_bytes()));
  Buffer xb(size_t(batch) * 28 * 28 * 4), yb(size_t(batch) * 4);
  Tensor x(xb.data(), Shape{batch, 1, 28, 28}), y(yb.data(), Shape{batch}, DType::i32);

  data::BatchSampler batches(train, {}, {.batch_size = batch, .drop_last = true}, 1);
  const int64_t steps = batches.batches_per_epoch() * epochs;
  for (int64_t s = 0; s < steps; ++s) {
    sgd.set_lr(graph::cosine_lr(0.05f, 0.0f, s, steps));
    batches.next(x, y);
    params.zero_grads();
    step.run(arena, params, {{net.x, x}, {net.labels, y}});
    sgd.step(params);
    if ((s + 1) % batches.batches_per_epoch() == 0)
      std::printf("epoch %lld: loss %.4f\n", (long long)((s + 1) / batches.batches_per_epoch()),
                  step.output(arena, net.loss).f32()[0]);
  }

  data::BatchSampler test_batches(test, {}, {.batch_size = batch, .shuffle = false}, 0);
  int64_t correct = 0, seen = 0;
  for (int64_t b = 0; b < test_batches.batches_per_epoch(); ++b) {
    int64_t rows = test_batches.next(x, y);
    for (int64_t i = rows; i < batch; ++i) y.i32()[i] = 0;  // padding rows: any valid label
    eval.run(arena, params, {{eval_net.x, x}, {eval_net.labels, y}});
    Tensor logits = eval.output(arena, eval_net.logits);
    for (int64_t i = 0; i < rows; ++i) {
      const float* r = logits.f32() + i * 10;
      correct += std::max_element(r, r + 10) - r == y.i32()[i];
    }
    seen += rows;
  }
  std::printf("test accuracy: %.4f (%lld images)\n", double(correct) / double(seen), (long long)seen);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
