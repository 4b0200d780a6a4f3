// Each op's forward through the graph against runtime/kernels/reference.h (or a
// plain loop for the ops that have no reference kernel), one case each; shape
// inference errors name the op, the node and the values; the op table generated
// from ops/op_list.inc is consistent.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "ops/op_list.h"
#include "ops/ops.h"
#include "runtime/kernels/conv2d.h"
#include "runtime/kernels/reference.h"
#include "tests/ops/gradcheck.h"

using namespace onnas;
using Catch::Matchers::Contains;
using graph::ValueId;
using onnas::test::Fill;
using onnas::test::OpTester;

namespace {

std::vector<double> as_double(const Tensor& t) { return std::vector<double>(t.f32(), t.f32() + t.numel()); }

void check_close(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::abs(double(got[i]) - want[i]) > 1e-4 * (1.0 + std::abs(want[i])) && bad++ == 0) first_bad = i;
  INFO(bad << " of " << got.size() << " differ; first at " << first_bad << ": " << got[first_bad] << " vs "
           << want[first_bad]);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("forward values match the reference kernels", "[ops][forward]") {
  SECTION("conv2d, stride 2, dilation 2, 1x5 padding") {
    OpTester t;
    const ValueId x = t.input("x", Shape{2, 3, 9, 7});
    const ValueId w = t.weight("w", Shape{4, 3, 3, 5});
    const ops::Conv2dAttrs a{.stride = 2, .dilation = 2, .pad_h = 2, .pad_w = 4};
    const std::vector<float> y = t.forward(ops::conv2d(t.graph(), x, w, a));
    const kernels::Conv2dShape s{.N = 2, .C = 3, .H = 9, .W = 7, .K = 4, .R = 3, .S = 5, .stride_h = 2,
                                 .stride_w = 2, .pad_h = 2, .pad_w = 4, .dil_h = 2, .dil_w = 2};
    std::vector<double> want(size_t(s.N * s.K * s.P() * s.Q()));
    kernels::ref::conv2d_forward<double>(s, as_double(t.data(x)).data(), as_double(t.data(w)).data(), want.data());
    check_close(y, want);
  }
  SECTION("conv2d, depthwise") {
    OpTester t;
    const ValueId x = t.input("x", Shape{2, 4, 6, 5});
    const ValueId w = t.weight("w", Shape{4, 1, 3, 3});
    const std::vector<float> y = t.forward(ops::conv2d(t.graph(), x, w, {.pad = 1, .groups = 4}));
    const kernels::Conv2dShape s{.N = 2, .C = 4, .H = 6, .W = 5, .K = 4, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1,
                                 .groups = 4};
    std::vector<double> want(size_t(s.N * s.K * s.P() * s.Q()));
    kernels::ref::conv2d_forward<double>(s, as_double(t.data(x)).data(), as_double(t.data(w)).data(), want.data());
    check_close(y, want);
  }
  SECTION("max_pool2d and avg_pool2d, 3x3 stride 2 pad 1") {
    OpTester t;
    const ValueId x = t.input("x", Shape{2, 3, 7, 6});
    const ops::Pool2dAttrs a{.kernel = 3, .stride = 2, .pad = 1};
    const kernels::Pool2dShape s{.N = 2, .C = 3, .H = 7, .W = 6, .R = 3, .S = 3, .stride_h = 2, .stride_w = 2,
                                 .pad_h = 1, .pad_w = 1};
    const std::vector<double> xd = as_double(t.data(x));
    std::vector<double> want(size_t(2 * 3 * s.P() * s.Q()));
    std::vector<uint8_t> argmax(want.size());
    kernels::ref::max_pool2d_forward<double>(s, xd.data(), want.data(), argmax.data());
    check_close(t.forward(ops::max_pool2d(t.graph(), x, a)), want);
    kernels::ref::avg_pool2d_forward<double>(s, xd.data(), want.data());
    check_close(t.forward(ops::avg_pool2d(t.graph(), x, a)), want);
  }
  SECTION("global_avg_pool") {
    OpTester t;
    const ValueId x = t.input("x", Shape{2, 3, 5, 7});
    std::vector<double> want(6);
    kernels::ref::global_avg_pool_forward<double>(2, 3, 35, as_double(t.data(x)).data(), want.data());
    check_close(t.forward(ops::global_avg_pool(t.graph(), x)), want);
  }
  SECTION("batch_norm in training updates the running statistics; evaluation uses them") {
    OpTester t;
    const ValueId x = t.input("x", Shape{2, 3, 4, 5});
    ops::BatchNormParams p{.gamma = t.weight("bn.weight", Shape{3}, Fill::positive),
                           .beta = t.weight("bn.bias", Shape{3}),
                           .running_mean = t.buffer("bn.running_mean", Shape{3}),
                           .running_var = t.buffer("bn.running_var", Shape{3}, Fill::positive)};
    const kernels::BatchNormShape s{.N = 2, .C = 3, .HW = 20};
    const std::vector<double> xd = as_double(t.data(x)), gamma = as_double(t.data(p.gamma)),
                              beta = as_double(t.data(p.beta));
    std::vector<double> rm = as_double(t.data(p.running_mean)), rv = as_double(t.data(p.running_var));
    std::vector<double> want(xd.size()), mean(3), rstd(3);

    const ValueId eval = ops::batch_norm(t.graph(), x, p, {.training = false}, "bn_eval");
    kernels::ref::batch_norm_forward_infer<double>(s, xd.data(), gamma.data(), beta.data(), rm.data(), rv.data(),
                                                   want.data());
    check_close(t.forward(eval), want);

    const ValueId train = ops::batch_norm(t.graph(), x, p, {.training = true}, "bn_train");
    kernels::ref::batch_norm_forward_train<double>(s, xd.data(), gamma.data(), beta.data(), want.data(), mean.data(),
                                                   rstd.data(), rm.data(), rv.data());
    check_close(t.forward(train), want);
    check_close(std::vector<float>(t.data(p.running_mean).f32(), t.data(p.running_mean).f32() + 3), rm);
    check_close(std::vector<float>(t.data(p.running_var).f32(), t.data(p.running_var).f32() + 3), rv);
  }
  SECTION("linear, softmax, softmax_cross_entropy") {
    OpTester t;
    const ValueId x = t.input("x", Shape{3, 5});
    const ValueId w = t.weight("w", Shape{4, 5});
    const ValueId b = t.weight("b", Shape{4});
    const ValueId labels = t.labels("labels", 3, 4);
    std::vector<double> logits(12), probs(12);
    kernels::ref::linear_forward<double>(3, 5, 4, as_double(t.data(x)).data(), as_double(t.data(w)).data(),
                                         as_double(t.data(b)).data(), logits.data());
    const ValueId z = ops::linear(t.graph(), x, w, b);
    check_close(t.forward(z), logits);
    kernels::ref::softmax_forward<double>(3, 4, logits.data(), probs.data());
    check_close(t.forward(ops::softmax(t.graph(), z)), probs);
    const double loss = kernels::ref::softmax_xent_forward<double>(3, 4, logits.data(), t.data(labels).i32(),
                                                                   probs.data());
    check_close(t.forward(ops::softmax_cross_entropy(t.graph(), z, labels)), {loss});
  }
  SECTION("relu and crop") {
    OpTester t;
    const ValueId x = t.input("x", Shape{2, 3, 5, 7});
    const std::vector<double> xd = as_double(t.data(x));
    std::vector<double> want(xd.size());
    kernels::ref::relu_forward<double>(int64_t(xd.size()), xd.data(), want.data());
    check_close(t.forward(ops::relu(t.graph(), x)), want);
    want.resize(2 * 3 * 3 * 4);
    kernels::ref::crop2d<double>(2, 3, 5, 7, 1, 2, 3, 4, xd.data(), want.data());
    check_close(t.forward(ops::crop(t.graph(), x, 1, 2, 3, 4)), want);
  }
  SECTION("add, scale, mul, weighted_sum, concat, slice (no reference kernel: plain loops)") {
    OpTester t;
    const ValueId a = t.input("a", Shape{2, 2, 3});
    const ValueId b = t.input("b", Shape{2, 1, 3});
    const ValueId s = t.weight("alpha", Shape{3});
    const std::vector<double> ad = as_double(t.data(a)), bd = as_double(t.data(b)), sd = as_double(t.data(s));
    std::vector<double> want(ad.size());
    for (size_t i = 0; i < ad.size(); ++i) want[i] = ad[i] + ad[i] * 0.25;
    check_close(t.forward(ops::add(t.graph(), a, ops::scale(t.graph(), a, 0.25f))), want);
    for (size_t i = 0; i < ad.size(); ++i) want[i] = sd[2] * ad[i];
    check_close(t.forward(ops::mul(t.graph(), a, s, 2)), want);
    const ValueId values[] = {a, a, a};
    const int64_t indices[] = {1, 0, 1};
    for (size_t i = 0; i < ad.size(); ++i) want[i] = (2 * sd[1] + sd[0]) * ad[i];
    check_close(t.forward(ops::weighted_sum(t.graph(), values, s, indices)), want);
    // concat([a, b]) along channels, then slice out b again.
    const ValueId parts[] = {a, b};
    const ValueId cat = ops::concat(t.graph(), parts);
    std::vector<double> cat_want;
    for (int n = 0; n < 2; ++n) {
      cat_want.insert(cat_want.end(), ad.begin() + n * 6, ad.begin() + n * 6 + 6);
      cat_want.insert(cat_want.end(), bd.begin() + n * 3, bd.begin() + n * 3 + 3);
    }
    check_close(t.forward(cat), cat_want);
    check_close(t.forward(ops::slice(t.graph(), cat, 2, 1)), bd);
  }
}

TEST_CASE("shape inference errors name the op, the node and the values", "[ops][errors]") {
  graph::Graph g;
  SECTION("conv2d with the wrong number of input channels") {
    const ValueId x = g.input("x", {Shape{2, 16, 8, 8}});
    const ValueId w = g.param("cells.0.pre0.conv.weight", {Shape{8, 48, 1, 1}});
    graph::Graph::Scope cell(g, "cells.0");
    graph::Graph::Scope pre(g, "pre0");
    CHECK_THROWS_WITH(ops::conv2d(g, x, w), Contains("conv2d 'cells.0.pre0.conv'") && Contains("'x' has 16 channels") &&
                                               Contains("'cells.0.pre0.conv.weight'") && Contains("expects 48"));
  }
  SECTION("backward of a non-scalar loss") {
    const ValueId x = g.input("x", {Shape{2, 3}});
    const ValueId w = g.param("fc.weight", {Shape{4, 3}});
    const ValueId logits = ops::linear(g, x, w, graph::kNoValue, "fc");
    CHECK_THROWS_WITH(graph::backward(g, logits, {w}), Contains("'fc'") && Contains("scalar") && Contains("[2, 4]"));
  }
  SECTION("add of mismatched shapes") {
    const ValueId a = g.input("node0", {Shape{2, 16, 8, 8}});
    const ValueId b = g.input("node1", {Shape{2, 16, 4, 4}});
    CHECK_THROWS_WITH(ops::add(g, a, b, "node2"), Contains("add 'node2'") && Contains("'node0' has shape [2, 16, 8, 8]") &&
                                                     Contains("'node1' has [2, 16, 4, 4]"));
  }
  SECTION("the other ops") {
    const ValueId x = g.input("x", {Shape{2, 3, 5, 5}});
    const ValueId s = g.param("alpha", {Shape{3}});
    CHECK_THROWS_WITH(ops::batch_norm(g, x, {}, {.training = false}),
                      Contains("batch_norm_eval 'bn'") && Contains("running_mean"));
    const ValueId big = g.input("big", {Shape{1, 1, 20, 20}});
    CHECK_THROWS_WITH(ops::max_pool2d(g, big, {.kernel = 17, .stride = 1, .pad = 0}, "pool"),
                      Contains("max_pool2d 'pool'") && Contains("17x17 has more than 256 positions"));
    CHECK_NOTHROW(ops::max_pool2d(g, big, {.kernel = 16, .stride = 1, .pad = 0}, "pool16"));
    const ValueId bad_gamma = g.param("bn2.weight", {Shape{4}});
    CHECK_THROWS_WITH(ops::batch_norm(g, x, {.gamma = bad_gamma}, {}, "bn2"),
                      Contains("'bn2.weight' has shape [4]") && Contains("3 channels"));
    const ValueId values[] = {x, x};
    const int64_t indices[] = {0, 3};
    CHECK_THROWS_WITH(ops::weighted_sum(g, values, s, indices, "mix"),
                      Contains("weighted_sum 'mix'") && Contains("index 3") && Contains("'alpha'"));
    CHECK_THROWS_WITH(ops::max_pool2d(g, x, {.kernel = 3, .stride = 1, .pad = 2}), Contains("max_pool2d 'max_pool'"));
    CHECK_THROWS_WITH(ops::crop(g, x, 1, 1, 5, 5), Contains("crop 'crop'") && Contains("'x' [2, 3, 5, 5]"));
    CHECK_THROWS_WITH(ops::slice(g, x, 2, 2), Contains("slice 'slice'") && Contains("[2, 4)"));
    const ValueId y = g.input("y", {Shape{2, 4, 4, 5}});
    const ValueId parts[] = {x, y};
    CHECK_THROWS_WITH(ops::concat(g, parts), Contains("concat 'concat'") && Contains("'y' has shape [2, 4, 4, 5]"));
    const ValueId logits = g.input("logits", {Shape{4, 10}});
    const ValueId labels = g.input("labels", {Shape{3}, DType::i32});
    CHECK_THROWS_WITH(ops::softmax_cross_entropy(g, logits, labels),
                      Contains("softmax_cross_entropy 'loss'") && Contains("'labels' [3]"));
    const ValueId float_labels = g.input("float_labels", {Shape{4}});
    CHECK_THROWS_WITH(ops::softmax_cross_entropy(g, logits, float_labels), Contains("must be i32"));
    const ValueId w = g.param("fc.weight", {Shape{2, 7}});
    CHECK_THROWS_WITH(ops::linear(g, logits, w, graph::kNoValue, "fc"),
                      Contains("linear 'fc'") && Contains("'logits' has 10 features"));
  }
}

TEST_CASE("the op table lists every op once, under its own name", "[ops][op_list]") {
  REQUIRE(ops::all_ops().size() == ops::kNumOps);
  std::set<std::string> names;
  for (size_t k = 0; k < ops::kNumOps; ++k) {
    const auto kind = static_cast<ops::OpKind>(k);
    const graph::OpDef& op = ops::op_def(kind);
    INFO(op.name);
    CHECK(op.name == ops::op_name(kind));
    CHECK(op.infer != nullptr);
    CHECK(op.forward != nullptr);
    CHECK(names.insert(op.name).second);
    CHECK(ops::find_op(op.name) == &op);
  }
  CHECK(ops::find_op("no_such_op") == nullptr);
  CHECK(ops::find_op("conv2d") == &ops::kConv2d);
}

TEST_CASE("each conv2d node asks for the workspace its own kernel uses", "[ops][conv2d]") {
  // The 1x5 conv of conv_1x5_5x1: forward and backward data need columns, the weight
  // gradient also partial sums; the planner must see each node's own figure.
  graph::Graph g;
  const ValueId x = g.input("x", {Shape{8, 4, 6, 6}});
  const ValueId w = g.param("w", {Shape{4, 4, 1, 5}});
  const ValueId y = ops::conv2d(g, x, w, {.pad_h = 0, .pad_w = 2});
  const ValueId loss = ops::softmax_cross_entropy(
      g, ops::global_avg_pool(g, y), g.input("labels", {Shape{8}, DType::i32}));
  graph::backward(g, loss, {x, w});
  const kernels::Conv2dShape s{.N = 8, .C = 4, .H = 6, .W = 6, .K = 4, .R = 1, .S = 5, .pad_h = 0, .pad_w = 2};
  int seen = 0;
  for (graph::NodeId n = 0; n < graph::NodeId(g.num_nodes()); ++n) {
    const graph::Node& node = g.node(n);
    const std::string op = node.op->name;
    kernels::ConvPass pass;
    if (op == "conv2d") pass = kernels::ConvPass::forward;
    else if (op == "conv2d_backward_data") pass = kernels::ConvPass::backward_data;
    else if (op == "conv2d_backward_weight") pass = kernels::ConvPass::backward_weight;
    else continue;
    INFO(op);
    CHECK(node.op->workspace_bytes(g, node) == kernels::conv2d_workspace_bytes(s, pass));
    seen++;
  }
  CHECK(seen == 3);
  CHECK(kernels::conv2d_workspace_bytes(s, kernels::ConvPass::backward_weight) >
        kernels::conv2d_workspace_bytes(s, kernels::ConvPass::backward_data));
}
