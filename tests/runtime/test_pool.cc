// Pooling: reference backward against finite differences (double, max-pool near-ties
// masked), fast kernels against the reference (float) over sweeps, and the PyTorch
// rules spelled out: first maximum wins, padding never wins, padding not counted.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/kernels/pool.h"
#include "runtime/kernels/reference.h"
#include "tests/runtime/kernel_test_util.h"

using namespace onnas;
using namespace onnas::kernels;

namespace {

size_t x_numel(const Pool2dShape& s) { return size_t(s.N * s.C * s.H * s.W); }
size_t y_numel(const Pool2dShape& s) { return size_t(s.N * s.C * s.P() * s.Q()); }

std::string describe(const Pool2dShape& s) {
  return fmt::format("N{} C{} {}x{} window {}x{} stride {}x{} pad {}x{}", s.N, s.C, s.H, s.W, s.R, s.S, s.stride_h,
                     s.stride_w, s.pad_h, s.pad_w);
}

}  // namespace

TEST_CASE("reference pooling backward matches central finite differences") {
  const int64_t stride = GENERATE(1, 2);
  const int64_t pad = GENERATE(0, 1);
  const int64_t window = GENERATE(2, 3);
  Pool2dShape s{.N = 2, .C = 3, .H = 6, .W = 7, .R = window, .S = window, .stride_h = stride, .stride_w = stride,
                .pad_h = pad, .pad_w = pad};
  INFO(describe(s));
  auto x = test::random<double>(x_numel(s), 21);
  const auto g = test::random<double>(y_numel(s), 22);
  std::vector<double> y(y_numel(s));
  std::vector<uint8_t> argmax(y_numel(s));

  SECTION("max pool, entries near a tie masked") {
    // A kink wherever two values of one plane are within reach of the perturbation.
    const int64_t HW = s.H * s.W;
    auto near_tie = [&](size_t i) {
      const int64_t plane = int64_t(i) / HW;
      for (int64_t j = plane * HW; j < (plane + 1) * HW; ++j)
        if (j != int64_t(i) && std::abs(x[size_t(j)] - x[i]) < 1e-4) return true;
      return false;
    };
    auto loss = [&] {
      ref::max_pool2d_forward<double>(s, x.data(), y.data(), argmax.data());
      return test::weighted_sum(y, g);
    };
    loss();
    std::vector<double> dx(x.size());
    ref::max_pool2d_backward<double>(s, g.data(), argmax.data(), dx.data());
    test::expect_close(test::masked(dx, near_tie), test::numeric_grad(x, loss, near_tie), 1e-6, 1e-7, "max dx");
  }
  SECTION("avg pool") {
    auto loss = [&] {
      ref::avg_pool2d_forward<double>(s, x.data(), y.data());
      return test::weighted_sum(y, g);
    };
    std::vector<double> dx(x.size());
    ref::avg_pool2d_backward<double>(s, g.data(), dx.data());
    test::expect_close(dx, test::numeric_grad(x, loss), 1e-6, 1e-7, "avg dx");
  }
  SECTION("global avg pool") {
    const int64_t HW = s.H * s.W;
    std::vector<double> gy(size_t(s.N * s.C));
    auto gg = test::random<double>(gy.size(), 23);
    auto loss = [&] {
      ref::global_avg_pool_forward<double>(s.N, s.C, HW, x.data(), gy.data());
      return test::weighted_sum(gy, gg);
    };
    std::vector<double> dx(x.size());
    ref::global_avg_pool_backward<double>(s.N, s.C, HW, gg.data(), dx.data());
    test::expect_close(dx, test::numeric_grad(x, loss), 1e-6, 1e-7, "global avg dx");
  }
}

TEST_CASE("pooling kernels match the reference") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  const int64_t stride = GENERATE(1, 2);
  const int64_t pad = GENERATE(0, 1);
  const int64_t window = GENERATE(2, 3, 5);
  const int64_t C = GENERATE(3, 17);
  const int64_t N = GENERATE(1, 2);
  const int64_t H = GENERATE(7, 14);
  Pool2dShape s{.N = N, .C = C, .H = H, .W = H + 3, .R = window, .S = window, .stride_h = stride,
                .stride_w = stride, .pad_h = pad, .pad_w = pad};
  INFO(describe(s) << " isa " << isa_name(isa));
  const auto x = test::random<float>(x_numel(s), 31);
  const auto dy = test::random<float>(y_numel(s), 32);

  std::vector<float> y(y_numel(s), NAN), y_ref(y_numel(s));
  std::vector<uint8_t> am(y_numel(s), 0xee), am_ref(y_numel(s));
  max_pool2d_forward(s, x.data(), y.data(), am.data());
  ref::max_pool2d_forward<float>(s, x.data(), y_ref.data(), am_ref.data());
  CHECK(y == y_ref);  // a maximum is a copy: exact
  CHECK(am == am_ref);

  std::vector<float> dx(x_numel(s), NAN), dx_ref(x_numel(s));
  max_pool2d_backward(s, dy.data(), am.data(), dx.data());
  ref::max_pool2d_backward<float>(s, dy.data(), am_ref.data(), dx_ref.data());
  test::expect_close(dx, dx_ref, 1e-6, 1e-6, "max backward");

  avg_pool2d_forward(s, x.data(), y.data());
  ref::avg_pool2d_forward<float>(s, x.data(), y_ref.data());
  test::expect_close(y, y_ref, 1e-5, 1e-6, "avg forward");
  avg_pool2d_backward(s, dy.data(), dx.data());
  ref::avg_pool2d_backward<float>(s, dy.data(), dx_ref.data());
  test::expect_close(dx, dx_ref, 1e-5, 1e-6, "avg backward");

  const int64_t HW = s.H * s.W;
  std::vector<float> gy(size_t(N * C), NAN), gy_ref(size_t(N * C));
  global_avg_pool_forward(N, C, HW, x.data(), gy.data());
  ref::global_avg_pool_forward<float>(N, C, HW, x.data(), gy_ref.data());
  test::expect_close(gy, gy_ref, 1e-5, 1e-6, "global avg forward");
  std::vector<float> gdx(x.size(), NAN), gdx_ref(x.size());
  global_avg_pool_backward(N, C, HW, gy.data(), gdx.data());
  ref::global_avg_pool_backward<float>(N, C, HW, gy.data(), gdx_ref.data());
  test::expect_close(gdx, gdx_ref, 1e-6, 1e-7, "global avg backward");
}

TEST_CASE("max pool: the first maximum wins ties and padding never wins") {
  Pool2dShape s{.N = 1, .C = 1, .H = 4, .W = 4, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  // All equal and negative: a padded zero must not win, and the argmax is the first
  // in-bounds position of each window, as its offset r * 3 + t within the window.
  std::vector<float> x(16, -2.0f), y(16);
  std::vector<uint8_t> am(16);
  max_pool2d_forward(s, x.data(), y.data(), am.data());
  for (float v : y) CHECK(v == -2.0f);
  CHECK(am[0] == 1 * 3 + 1);    // window rows -1..1, cols -1..1 -> first in-bounds (0, 0): tap (1, 1)
  CHECK(am[1] == 1 * 3 + 0);    // cols 0..2 -> (0, 0): tap (1, 0)
  CHECK(am[2] == 1 * 3 + 0);    // cols 1..3 -> (0, 1): tap (1, 0)
  CHECK(am[5] == 0);            // (1, 1): rows 0..2, cols 0..2 -> (0, 0): tap (0, 0)
  CHECK(am[15] == 0);           // (3, 3): rows 2..4, cols 2..4 -> (2, 2): tap (0, 0)

  // Gradient of a tie goes to the first maximum only.
  std::vector<float> dy(16, 1.0f), dx(16);
  max_pool2d_backward(s, dy.data(), am.data(), dx.data());
  CHECK(dx[0] == 4.0f);  // outputs (0,0), (0,1), (1,0), (1,1) all chose (0, 0)
  CHECK(dx[3] == 0.0f);
}

TEST_CASE("avg pool excludes padding from the count, global avg pool is the plane mean") {
  Pool2dShape s{.N = 1, .C = 2, .H = 3, .W = 3, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  std::vector<float> x(18, 1.0f), y(18);
  avg_pool2d_forward(s, x.data(), y.data());
  for (float v : y) CHECK(v == Approx(1.0f));  // count_include_pad = True would give 4/9 in a corner

  std::vector<float> dy(18, 1.0f), dx(18);
  avg_pool2d_backward(s, dy.data(), dx.data());
  // Corner (0,0) is in the windows of outputs (0,0) [4 values], (0,1) [6], (1,0) [6], (1,1) [9].
  CHECK(dx[0] == Approx(1.0 / 4 + 1.0 / 6 + 1.0 / 6 + 1.0 / 9));

  std::vector<float> plane = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}, g(2);
  global_avg_pool_forward(1, 2, 9, plane.data(), g.data());
  CHECK(g[0] == Approx(5.0f));
  CHECK(g[1] == Approx(14.0f));
}

TEST_CASE("avg pool 3x3 stride 1 pad 1 gives the bits of float sums over the in-bounds window in row-major order") {
  // The normal cells' pool runs on a zero-bordered copy; it must give exactly what the
  // plain loop gives: a float sum of the in-bounds values in row-major order, divided by
  // their count. Negative zeros and mixed signs included.
  const int64_t H = GENERATE(2, 7, 28), W = GENERATE(2, 5, 28);
  Pool2dShape s{.N = 2, .C = 3, .H = H, .W = W, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  INFO("H " << H << " W " << W);
  auto x = test::random<float>(size_t(s.N * s.C * H * W), 77);
  for (size_t i = 0; i < x.size(); i += 5) x[i] = -0.0f;
  std::vector<float> y(x.size(), NAN), want(x.size());
  avg_pool2d_forward(s, x.data(), y.data());
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < H; ++p)
      for (int64_t q = 0; q < W; ++q) {
        float acc = 0.0f;
        int count = 0;
        for (int64_t h = p - 1; h <= p + 1; ++h)
          for (int64_t v = q - 1; v <= q + 1; ++v)
            if (h >= 0 && h < H && v >= 0 && v < W) acc += x[size_t((nc * H + h) * W + v)], ++count;
        want[size_t((nc * H + p) * W + q)] = acc / float(count);
      }
  CHECK(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) == 0);
}

TEST_CASE("max pool 3x3 stride 1 pad 1 gives the plain loop's values and argmax, ties, -inf and NaN included") {
  // The normal cells' max pool runs on a copy bordered with -inf; it must keep the plain
  // loop's rule: start from the window's first in-bounds value, take a later one only if
  // strictly larger, in row-major order (padding never wins, ties keep the first, a NaN
  // start stays). On every ISA (the SIMD rows and the scalar loop).
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  const int64_t H = GENERATE(2, 5, 28), W = GENERATE(2, 7, 28);
  Pool2dShape s{.N = 2, .C = 3, .H = H, .W = W, .R = 3, .S = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  INFO("isa " << isa_name(isa) << " H " << H << " W " << W);
  auto x = test::random<float>(size_t(s.N * s.C * H * W), 91);
  for (size_t i = 0; i < x.size(); ++i) {
    if (i % 7 == 0) x[i] = 0.25f;  // ties
    if (i % 11 == 0) x[i] = -std::numeric_limits<float>::infinity();
    if (i % 29 == 0) x[i] = NAN;
  }
  std::vector<float> y(x.size(), 0.0f), want(x.size());
  std::vector<uint8_t> at(x.size(), 0xee), want_at(x.size());
  max_pool2d_forward(s, x.data(), y.data(), at.data());
  for (int64_t nc = 0; nc < s.N * s.C; ++nc)
    for (int64_t p = 0; p < H; ++p)
      for (int64_t q = 0; q < W; ++q) {
        const int64_t h0 = p > 0 ? p - 1 : 0, v0 = q > 0 ? q - 1 : 0;
        int32_t best_at = int32_t(h0 * W + v0);
        float best = x[size_t(nc * H * W + best_at)];
        for (int64_t h = h0; h <= p + 1 && h < H; ++h)
          for (int64_t v = v0; v <= q + 1 && v < W; ++v)
            if (x[size_t(nc * H * W + h * W + v)] > best) best = x[size_t(nc * H * W + h * W + v)], best_at = int32_t(h * W + v);
        want[size_t(nc * H * W + p * W + q)] = best;
        // As an offset within the window, whose first row is p - 1 and column q - 1.
        want_at[size_t(nc * H * W + p * W + q)] = uint8_t((best_at / W - (p - 1)) * 3 + best_at % W - (q - 1));
      }
  CHECK(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) == 0);
  CHECK(at == want_at);
  // The backward scatters in the plain loop's order: the same sums, bit for bit.
  const auto dy = test::random<float>(x.size(), 92);
  std::vector<float> dx(x.size(), NAN), dx_ref(x.size());
  max_pool2d_backward(s, dy.data(), at.data(), dx.data());
  ref::max_pool2d_backward<float>(s, dy.data(), want_at.data(), dx_ref.data());
  CHECK(std::memcmp(dx.data(), dx_ref.data(), dx.size() * sizeof(float)) == 0);
}

TEST_CASE("max pool refuses a window of more positions than its byte-sized argmax can name") {
  Pool2dShape s{.N = 1, .C = 1, .H = 17, .W = 17, .R = 17, .S = 17, .stride_h = 1, .stride_w = 1, .pad_h = 0, .pad_w = 0};
  std::vector<float> x(17 * 17), y(1), dx(17 * 17);
  std::vector<uint8_t> am(1);
  CHECK_THROWS_WITH(max_pool2d_forward(s, x.data(), y.data(), am.data()), Catch::Contains("17x17 window"));
  CHECK_THROWS_WITH(max_pool2d_backward(s, y.data(), am.data(), dx.data()), Catch::Contains("256 positions"));
  s.R = s.S = 16;  // 256 positions: the largest
  s.H = s.W = 16;
  x.assign(256, 0.0f);
  x[255] = 1.0f;
  max_pool2d_forward(s, x.data(), y.data(), am.data());
  CHECK(am[0] == 255);
  CHECK(y[0] == 1.0f);
}
