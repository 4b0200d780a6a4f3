// Elementwise and data-movement kernels: ReLU and crop backward against finite
// differences (double, ReLU's kink masked), every fast kernel against plain loops,
// channel concat / split / slice round trips, and dot / sum bit-identical on 1 and 2
// threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/kernels/elementwise.h"
#include "runtime/kernels/reference.h"
#include "tests/runtime/kernel_test_util.h"

using namespace onnas;
using namespace onnas::kernels;

TEST_CASE("reference relu and crop backward match central finite differences") {
  SECTION("relu, entries near the kink at 0 masked") {
    auto x = test::random<double>(200, 81);
    const auto g = test::random<double>(200, 82);
    std::vector<double> y(200);
    auto near_kink = [&](size_t i) { return std::abs(x[i]) < 1e-4; };
    auto loss = [&] {
      ref::relu_forward<double>(200, x.data(), y.data());
      return test::weighted_sum(y, g);
    };
    std::vector<double> dx(200);
    ref::relu_backward<double>(200, x.data(), g.data(), dx.data());
    test::expect_close(test::masked(dx, near_kink), test::numeric_grad(x, loss, near_kink), 1e-6, 1e-7, "relu dx");
  }
  SECTION("crop") {
    auto x = test::random<double>(2 * 3 * 6 * 7, 83);
    const auto g = test::random<double>(2 * 3 * 4 * 3, 84);
    std::vector<double> y(g.size());
    auto loss = [&] {
      ref::crop2d<double>(2, 3, 6, 7, 1, 2, 4, 3, x.data(), y.data());
      return test::weighted_sum(y, g);
    };
    std::vector<double> dx(x.size());
    ref::crop2d_backward<double>(2, 3, 6, 7, 1, 2, 4, 3, g.data(), dx.data());
    test::expect_close(dx, test::numeric_grad(x, loss), 1e-6, 1e-7, "crop dx");
  }
}

TEST_CASE("elementwise kernels match plain loops") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  const int64_t n = GENERATE(0, 1, 17, 16384 * 3 + 5);
  INFO("n " << n << " isa " << isa_name(isa));
  const auto a = test::random<float>(size_t(n), 91), b = test::random<float>(size_t(n), 92);
  const size_t count = size_t(n);
  std::vector<float> y(count, NAN), want(count);

  relu_forward(n, a.data(), y.data());
  ref::relu_forward<float>(n, a.data(), want.data());
  CHECK(y == want);
  relu_backward(n, a.data(), b.data(), y.data());
  ref::relu_backward<float>(n, a.data(), b.data(), want.data());
  CHECK(y == want);
  // The mask is the same when given relu's output instead of its input.
  std::vector<float> relu_out(count), y2(count);
  relu_forward(n, a.data(), relu_out.data());
  relu_backward(n, relu_out.data(), b.data(), y2.data());
  CHECK(y2 == want);

  add(n, a.data(), b.data(), y.data());
  for (size_t i = 0; i < want.size(); ++i) want[i] = a[i] + b[i];
  CHECK(y == want);
  accumulate(n, a.data(), y.data());
  for (size_t i = 0; i < want.size(); ++i) want[i] += a[i];
  CHECK(y == want);
  scale(n, 0.5f, a.data(), y.data());
  for (size_t i = 0; i < want.size(); ++i) want[i] = 0.5f * a[i];
  CHECK(y == want);
  axpy(n, -3.0f, b.data(), y.data());
  for (size_t i = 0; i < want.size(); ++i) want[i] += -3.0f * b[i];
  CHECK(y == want);
  fill(n, 2.5f, y.data());
  CHECK(std::all_of(y.begin(), y.end(), [](float v) { return v == 2.5f; }));

  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) d += double(a[i]) * double(b[i]), s += double(a[i]);
  CHECK(dot(n, a.data(), b.data()) == Approx(d).margin(1e-4).epsilon(1e-5));
  CHECK(sum(n, a.data()) == Approx(s).margin(1e-4).epsilon(1e-5));
}

TEST_CASE("dot and sum are bit-identical on 1 and 2 threads") {
  const int64_t n = GENERATE(100, 1000003, 16384 * 300 + 7);  // the last exceeds the 256-chunk cap
  const auto a = test::random<float>(size_t(n), 101), b = test::random<float>(size_t(n), 102);
  double d1, d2, s1, s2;
  {
    test::ThreadGuard one(1);
    d1 = dot(n, a.data(), b.data());
    s1 = sum(n, a.data());
  }
  {
    test::ThreadGuard two(2);
    d2 = dot(n, a.data(), b.data());
    s2 = sum(n, a.data());
  }
  CHECK(std::memcmp(&d1, &d2, sizeof d1) == 0);
  CHECK(std::memcmp(&s1, &s2, sizeof s1) == 0);
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += double(a[i]) * double(b[i]);
  CHECK(d1 == Approx(d).margin(1e-3).epsilon(1e-5));
}

TEST_CASE("channel concat, split and slice move the right planes") {
  const int64_t N = GENERATE(1, 3), HW = GENERATE(1, 49);
  const std::vector<int64_t> channels = {2, 5, 1};
  const int64_t C = 8;
  std::vector<std::vector<float>> parts;
  for (size_t i = 0; i < channels.size(); ++i)
    parts.push_back(test::random<float>(size_t(N * channels[i] * HW), 110 + i));
  std::vector<const float*> ins = {parts[0].data(), parts[1].data(), parts[2].data()};
  std::vector<float> y(size_t(N * C * HW), NAN);
  concat_channels(N, HW, channels, ins, y.data());
  // y[n, 2 + c, i] is part 1's [n, c, i].
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t i = 0; i < HW; ++i)
        REQUIRE(y[size_t((n * C + 2 + c) * HW + i)] == parts[1][size_t((n * 5 + c) * HW + i)]);

  std::vector<std::vector<float>> back(3);
  for (size_t i = 0; i < 3; ++i) back[i].assign(parts[i].size(), NAN);
  std::vector<float*> outs = {back[0].data(), back[1].data(), back[2].data()};
  split_channels(N, HW, channels, y.data(), outs);
  for (size_t i = 0; i < 3; ++i) CHECK(back[i] == parts[i]);

  std::vector<float> sl(size_t(N * 5 * HW), NAN);
  slice_channels(N, C, HW, 2, 5, y.data(), sl.data());
  CHECK(sl == parts[1]);
  std::vector<float> dx(y.size(), NAN);
  slice_channels_backward(N, C, HW, 2, 5, sl.data(), dx.data());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) {
        const size_t at = size_t((n * C + c) * HW + i);
        REQUIRE(dx[at] == (c >= 2 && c < 7 ? y[at] : 0.0f));
      }
  CHECK_THROWS_AS(slice_channels(N, C, HW, 5, 5, y.data(), sl.data()), Error);
}

TEST_CASE("crop and its backward match the reference") {
  const int64_t top = GENERATE(0, 1, 3), left = GENERATE(0, 2);
  const int64_t N = 2, C = 3, H = 9, W = 8, OH = 5, OW = 6;
  const auto x = test::random<float>(size_t(N * C * H * W), 120);
  std::vector<float> y(size_t(N * C * OH * OW), NAN), y_ref(y.size());
  crop2d(N, C, H, W, top, left, OH, OW, x.data(), y.data());
  ref::crop2d<float>(N, C, H, W, top, left, OH, OW, x.data(), y_ref.data());
  CHECK(y == y_ref);
  std::vector<float> dx(x.size(), NAN), dx_ref(x.size());
  crop2d_backward(N, C, H, W, top, left, OH, OW, y.data(), dx.data());
  ref::crop2d_backward<float>(N, C, H, W, top, left, OH, OW, y.data(), dx_ref.data());
  CHECK(dx == dx_ref);
  CHECK_THROWS_AS(crop2d(N, C, H, W, 5, 0, OH, OW, x.data(), y.data()), Error);
}
