// Every op's gradient, through the graph (seeded backward, compile, run), against
// central finite differences of the forward program: sweeps over stride, dilation,
// padding, odd sizes, batch 1, 1x5 / 5x1, depthwise and grouped convolutions; batch
// norm in train and eval mode, affine or not; weighted sums with repeated indices;
// values used twice.
#include <catch2/catch.hpp>

#include "ops/ops.h"
#include "tests/ops/gradcheck.h"

using namespace onnas;
using onnas::test::Fill;
using onnas::test::OpTester;
using graph::ValueId;

namespace {

struct ConvCase {
  int64_t N, C, H, W, K, R, S, stride, pad_h, pad_w, dilation, groups;
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) {
  return os << "x [" << c.N << ", " << c.C << ", " << c.H << ", " << c.W << "] w [" << c.K << ", " << c.C / c.groups
            << ", " << c.R << ", " << c.S << "] stride " << c.stride << " pad " << c.pad_h << "x" << c.pad_w
            << " dilation " << c.dilation << " groups " << c.groups;
}

}  // namespace

TEST_CASE("conv2d gradients: x and w, over strides, dilations, kernels and groups", "[ops][grad][conv2d]") {
  const ConvCase c = GENERATE(values<ConvCase>({
      {2, 3, 5, 7, 4, 3, 3, 1, 1, 1, 1, 1},   // 3x3, odd sizes
      {2, 3, 5, 7, 4, 3, 3, 2, 1, 1, 1, 1},   // stride 2
      {1, 3, 7, 7, 2, 3, 3, 1, 2, 2, 2, 1},   // dilation 2, batch 1
      {2, 4, 5, 7, 3, 1, 5, 1, 0, 2, 1, 1},   // 1x5
      {2, 4, 7, 5, 3, 5, 1, 1, 2, 0, 1, 1},   // 5x1
      {2, 8, 4, 4, 6, 1, 1, 1, 0, 0, 1, 1},   // 1x1 (SGEMM straight on the input)
      {2, 6, 5, 5, 4, 1, 1, 2, 0, 0, 1, 1},   // 1x1 stride 2 (the reduction shortcut)
      {2, 4, 5, 7, 4, 3, 3, 1, 1, 1, 1, 4},   // depthwise 3x3
      {2, 4, 7, 7, 4, 3, 3, 2, 2, 2, 2, 4},   // depthwise, stride 2, dilation 2
      {1, 3, 7, 6, 3, 5, 5, 1, 2, 2, 1, 3},   // depthwise 5x5, batch 1
      {2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 2},   // 2 groups
  }));
  INFO(c);
  OpTester t(42);
  const ValueId x = t.input("x", Shape{c.N, c.C, c.H, c.W});
  const ValueId w = t.weight("w", Shape{c.K, c.C / c.groups, c.R, c.S});
  t.check_gradients(ops::conv2d(t.graph(), x, w,
                                {.stride = c.stride, .dilation = c.dilation, .groups = c.groups, .pad_h = c.pad_h,
                                 .pad_w = c.pad_w}));
}

TEST_CASE("conv2d gradient of w alone emits no data gradient", "[ops][grad][conv2d]") {
  OpTester t(3);
  const ValueId x = t.constant("x", Shape{2, 3, 5, 5});
  const ValueId w = t.weight("w", Shape{4, 3, 3, 3});
  t.check_gradients(ops::conv2d(t.graph(), x, w, {.pad = 1}));
  for (size_t step = 0; step < t.program().num_steps(); ++step)
    CHECK(std::string(t.program().step_op(step)) != "conv2d_backward_data");
}

TEST_CASE("relu gradient away from the kink", "[ops][grad][relu]") {
  OpTester t(5);
  const ValueId x = t.input("x", Shape{2, 3, 5, 7}, Fill::away_from_zero);
  t.check_gradients(ops::relu(t.graph(), x));
}

TEST_CASE("batch_norm gradients: train and eval, affine or not, with or without running stats",
          "[ops][grad][batch_norm]") {
  const bool training = GENERATE(true, false);
  const bool affine = GENERATE(true, false);
  const bool running = GENERATE(true, false);
  const Shape shape = GENERATE(Shape{2, 3, 5, 7}, Shape{1, 4, 3, 3}, Shape{6, 5});
  if (!training && !running) return;  // evaluation needs running statistics (an error, tested elsewhere)
  INFO("training " << training << ", affine " << affine << ", running stats " << running << ", x " << shape.str());
  OpTester t(7);
  const int64_t C = shape[1];
  const ValueId x = t.input("x", shape);
  ops::BatchNormParams p;
  if (affine) {
    p.gamma = t.weight("bn.weight", Shape{C}, Fill::positive);
    p.beta = t.weight("bn.bias", Shape{C});
  }
  if (running) {
    p.running_mean = t.buffer("bn.running_mean", Shape{C});
    p.running_var = t.buffer("bn.running_var", Shape{C}, Fill::positive);
  }
  t.check_gradients(ops::batch_norm(t.graph(), x, p, {.training = training}));
}

TEST_CASE("max_pool2d gradient on inputs without near-ties", "[ops][grad][pool]") {
  const auto [kernel, stride, pad] = GENERATE(table<int64_t, int64_t, int64_t>({{3, 1, 1}, {3, 2, 1}, {2, 2, 0}}));
  const Shape shape = GENERATE(Shape{2, 3, 5, 7}, Shape{1, 2, 6, 6});
  INFO("kernel " << kernel << " stride " << stride << " pad " << pad << " x " << shape.str());
  OpTester t(11);
  // Spaced 0.05 apart, five steps: a perturbation never changes which input wins.
  const ValueId x = t.input("x", shape, Fill::distinct);
  t.step(1e-2).check_gradients(ops::max_pool2d(t.graph(), x, {.kernel = kernel, .stride = stride, .pad = pad}));
}

TEST_CASE("avg_pool2d and global_avg_pool gradients", "[ops][grad][pool]") {
  const auto [kernel, stride, pad] = GENERATE(table<int64_t, int64_t, int64_t>({{3, 1, 1}, {3, 2, 1}, {2, 2, 0}}));
  OpTester t(13);
  const ValueId x = t.input("x", Shape{2, 3, 5, 7});
  t.check_gradients(ops::avg_pool2d(t.graph(), x, {.kernel = kernel, .stride = stride, .pad = pad}));

  OpTester u(14);
  const ValueId z = u.input("z", Shape{2, 3, 5, 7});
  u.check_gradients(ops::global_avg_pool(u.graph(), z));
}

TEST_CASE("linear gradients: x, w and b", "[ops][grad][linear]") {
  const bool bias = GENERATE(true, false);
  OpTester t(17);
  const ValueId x = t.input("x", Shape{3, 5});
  const ValueId w = t.weight("w", Shape{4, 5});
  const ValueId b = bias ? t.weight("b", Shape{4}) : graph::kNoValue;
  t.check_gradients(ops::linear(t.graph(), x, w, b));
}

TEST_CASE("softmax and softmax_cross_entropy gradients", "[ops][grad][softmax]") {
  OpTester t(19);
  const ValueId x = t.input("x", Shape{3, 6});
  t.check_gradients(ops::softmax(t.graph(), x));

  OpTester u(23);
  const ValueId logits = u.input("logits", Shape{4, 5});
  const ValueId labels = u.labels("labels", 4, 5);
  u.check_gradients(ops::softmax_cross_entropy(u.graph(), logits, labels));
}

TEST_CASE("add, sum and scale gradients", "[ops][grad][add]") {
  OpTester t(29);
  const ValueId a = t.input("a", Shape{2, 3, 4});
  const ValueId b = t.input("b", Shape{2, 3, 4});
  const ValueId c = t.weight("c", Shape{2, 3, 4});
  const ValueId values[] = {ops::add(t.graph(), a, b), ops::scale(t.graph(), c, -0.5f), b};
  t.check_gradients(ops::sum(t.graph(), values));
}

TEST_CASE("mul gradients: the value and the scalar vector", "[ops][grad][mul]") {
  OpTester t(31);
  const ValueId x = t.input("x", Shape{2, 3, 5});
  const ValueId s = t.weight("alpha", Shape{4}, Fill::normal, ParamKind::arch);
  t.check_gradients(ops::mul(t.graph(), x, s, 2));
}

TEST_CASE("weighted_sum gradients with repeated indices and a value used twice", "[ops][grad][mul]") {
  OpTester t(37);
  const ValueId v0 = t.input("v0", Shape{2, 3, 5});
  const ValueId v1 = t.input("v1", Shape{2, 3, 5});
  const ValueId v2 = t.input("v2", Shape{2, 3, 5});
  const ValueId s = t.weight("alpha", Shape{3}, Fill::normal, ParamKind::arch);
  const ValueId values[] = {v0, v1, v2, v0};
  const int64_t indices[] = {0, 2, 0, 1};
  t.check_gradients(ops::weighted_sum(t.graph(), values, s, indices));
}

TEST_CASE("concat, slice and crop gradients", "[ops][grad][data]") {
  OpTester t(41);
  const ValueId a = t.input("a", Shape{2, 2, 3, 5});
  const ValueId b = t.input("b", Shape{2, 3, 3, 5});
  const ValueId c = t.input("c", Shape{2, 1, 3, 5});
  const ValueId parts[] = {a, b, c};
  const ValueId cat = ops::concat(t.graph(), parts);
  // A slice that straddles two inputs, then a crop of it.
  const ValueId mid = ops::slice(t.graph(), cat, 1, 3);
  t.check_gradients(ops::crop(t.graph(), mid, 1, 2, 2, 3));
}

TEST_CASE("a value used twice gets the sum of both gradients", "[ops][grad][autodiff]") {
  OpTester t(43);
  const ValueId x = t.input("x", Shape{2, 3, 5, 5});
  const ValueId w = t.weight("w", Shape{3, 3, 3, 3});
  // x feeds the conv and the residual add; w is used by two convs.
  const ValueId y = ops::conv2d(t.graph(), ops::conv2d(t.graph(), x, w, {.pad = 1}), w, {.pad = 1});
  t.check_gradients(ops::add(t.graph(), y, x));
}
