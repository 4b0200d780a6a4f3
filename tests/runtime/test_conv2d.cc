// conv2d: the reference's backward against finite differences (double), the fast
// kernels against the reference (float) over sweeps of kernel, stride, dilation,
// padding, groups, odd sizes and every ISA, the workspace bound, and thread-count
// independence of the weight gradient.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/kernels/conv2d.h"
#include "runtime/kernels/sgemm.h"
#include "runtime/kernels/pool.h"
#include "runtime/kernels/reference.h"
#include "tests/runtime/kernel_test_util.h"

using namespace onnas;
using namespace onnas::kernels;

namespace {

size_t x_numel(const Conv2dShape& s) { return size_t(s.N * s.C * s.H * s.W); }
size_t y_numel(const Conv2dShape& s) { return size_t(s.N * s.K * s.P() * s.Q()); }

std::string describe(const Conv2dShape& s) {
  return fmt::format("N{} C{} {}x{} K{} kernel {}x{} stride {}x{} pad {}x{} dil {}x{} groups {}", s.N, s.C, s.H, s.W,
                     s.K, s.R, s.S, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h, s.dil_w, s.groups);
}

// Workspace with a canary tail: each kernel must stay within its conv2d_workspace_bytes().
struct Workspace {
  static constexpr size_t kCanary = 64;
  Workspace(const Conv2dShape& s, ConvPass pass)
      : floats(conv2d_workspace_bytes(s, pass) / 4), mem(floats + kCanary, 7.0f) {}
  void* data() { return mem.data(); }
  bool canary_intact() const {
    for (size_t i = floats; i < mem.size(); ++i)
      if (mem[i] != 7.0f) return false;
    return true;
  }
  size_t floats;
  std::vector<float> mem;
};

// Runs forward, backward data and backward weight fast and reference (float) and compares.
void check_fast_against_reference(const Conv2dShape& s, uint64_t seed) {
  INFO(describe(s));
  auto x = test::random<float>(x_numel(s), seed);
  auto w = test::random<float>(size_t(s.weight_numel()), seed + 1);
  auto dy = test::random<float>(y_numel(s), seed + 2);
  Workspace ws_f(s, ConvPass::forward), ws_d(s, ConvPass::backward_data), ws_w(s, ConvPass::backward_weight);

  // Outputs start as NaN so that anything left unwritten shows.
  std::vector<float> y(y_numel(s), NAN), y_ref(y_numel(s));
  conv2d_forward(s, x.data(), w.data(), y.data(), ws_f.data());
  ref::conv2d_forward<float>(s, x.data(), w.data(), y_ref.data());
  test::expect_close(y, y_ref, 1e-4, 1e-4, "forward");

  std::vector<float> dx(x_numel(s), NAN), dx_ref(x_numel(s));
  conv2d_backward_data(s, dy.data(), w.data(), dx.data(), ws_d.data());
  ref::conv2d_backward_data<float>(s, dy.data(), w.data(), dx_ref.data());
  test::expect_close(dx, dx_ref, 1e-4, 1e-4, "backward data");

  std::vector<float> dw(size_t(s.weight_numel()), NAN), dw_ref(size_t(s.weight_numel()));
  conv2d_backward_weight(s, x.data(), dy.data(), dw.data(), ws_w.data());
  ref::conv2d_backward_weight<float>(s, x.data(), dy.data(), dw_ref.data());
  test::expect_close(dw, dw_ref, 1e-4, 1e-4, "backward weight");

  CHECK(ws_f.canary_intact());
  CHECK(ws_d.canary_intact());
  CHECK(ws_w.canary_intact());
}

struct Kernel {
  int64_t R, S;
};

}  // namespace

TEST_CASE("reference conv2d backward matches central finite differences") {
  const auto [R, S] = GENERATE(Kernel{1, 1}, Kernel{3, 3}, Kernel{1, 3}, Kernel{3, 1}, Kernel{2, 3});
  const int64_t stride = GENERATE(1, 2);
  const int64_t dil = GENERATE(1, 2);
  const int64_t pad = GENERATE(0, 1, 2);
  const int64_t groups = GENERATE(1, 2, 4);  // 4 == C == K: depthwise
  Conv2dShape s{.N = 2, .C = 4, .H = 6, .W = 5, .K = 4, .R = R, .S = S, .stride_h = stride, .stride_w = stride,
                .pad_h = pad, .pad_w = pad, .dil_h = dil, .dil_w = dil, .groups = groups};
  if (s.P() <= 0 || s.Q() <= 0) return;
  INFO(describe(s));

  auto x = test::random<double>(x_numel(s), 11);
  auto w = test::random<double>(size_t(s.weight_numel()), 12);
  const auto g = test::random<double>(y_numel(s), 13);
  std::vector<double> y(y_numel(s));
  auto loss = [&] {
    ref::conv2d_forward<double>(s, x.data(), w.data(), y.data());
    return test::weighted_sum(y, g);
  };

  std::vector<double> dx(x.size()), dw(w.size());
  ref::conv2d_backward_data<double>(s, g.data(), w.data(), dx.data());
  ref::conv2d_backward_weight<double>(s, x.data(), g.data(), dw.data());
  test::expect_close(dx, test::numeric_grad(x, loss), 1e-6, 1e-7, "dx");
  test::expect_close(dw, test::numeric_grad(w, loss), 1e-6, 1e-7, "dw");
}

TEST_CASE("conv2d forward and backward match the reference: dense sweep") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  INFO("isa " << isa_name(isa));
  const auto [R, S] = GENERATE(Kernel{1, 1}, Kernel{3, 3}, Kernel{5, 5}, Kernel{1, 5}, Kernel{5, 1}, Kernel{7, 7},
                               Kernel{5, 9});
  const int64_t stride = GENERATE(1, 2);
  const int64_t dil = GENERATE(1, 2);
  const int64_t pad = GENERATE(0, 1, 2);
  const int64_t C = GENERATE(3, 17);
  Conv2dShape s{.N = 2, .C = C, .H = 11, .W = 13, .K = 5, .R = R, .S = S, .stride_h = stride, .stride_w = stride,
                .pad_h = pad, .pad_w = pad, .dil_h = dil, .dil_w = dil, .groups = 1};
  if (s.P() <= 0 || s.Q() <= 0) return;
  check_fast_against_reference(s, 100 + uint64_t(R * 10 + S));
}

TEST_CASE("conv2d forward and backward match the reference: depthwise sweep") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  INFO("isa " << isa_name(isa));
  const auto [R, S] = GENERATE(Kernel{1, 1}, Kernel{3, 3}, Kernel{5, 5}, Kernel{1, 5}, Kernel{5, 1}, Kernel{7, 7},
                               Kernel{5, 9});
  const int64_t stride = GENERATE(1, 2);
  const int64_t dil = GENERATE(1, 2);
  const int64_t pad = GENERATE(0, 1, 2);
  const int64_t C = GENERATE(3, 17);
  const int64_t N = GENERATE(1, 2);
  Conv2dShape s{.N = N, .C = C, .H = 12, .W = 19, .K = C, .R = R, .S = S, .stride_h = stride, .stride_w = stride,
                .pad_h = pad, .pad_w = pad, .dil_h = dil, .dil_w = dil, .groups = C};
  if (s.P() <= 0 || s.Q() <= 0) return;
  REQUIRE(s.depthwise());
  check_fast_against_reference(s, 200 + uint64_t(R * 10 + S));
}

TEST_CASE("conv2d matches the reference on odd shapes") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  INFO("isa " << isa_name(isa));
  std::vector<Conv2dShape> shapes = {
      // Batch 1, non-square input, mixed per-axis stride / pad / dilation.
      {.N = 1, .C = 3, .H = 9, .W = 14, .K = 17, .R = 3, .S = 5, .stride_h = 2, .stride_w = 1, .pad_h = 1,
       .pad_w = 2, .dil_h = 1, .dil_w = 2},
      // Depthwise planes too large for the padded stack buffers (8192 floats) take the
      // generic loops; rows longer than their weight-gradient column block (256).
      {.N = 1, .C = 2, .H = 100, .W = 100, .K = 2, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1, .groups = 2},
      {.N = 2, .C = 2, .H = 95, .W = 101, .K = 2, .R = 3, .S = 3, .stride_h = 2, .stride_w = 2, .pad_h = 2,
       .pad_w = 2, .dil_h = 2, .dil_w = 2, .groups = 2},
      {.N = 1, .C = 2, .H = 20, .W = 600, .K = 2, .R = 5, .S = 5, .pad_h = 2, .pad_w = 2, .groups = 2},
      {.N = 1, .C = 2, .H = 20, .W = 530, .K = 2, .R = 1, .S = 5, .stride_h = 1, .stride_w = 2, .pad_h = 0,
       .pad_w = 2, .groups = 2},
      {.N = 1, .C = 2, .H = 30, .W = 300, .K = 2, .R = 7, .S = 3, .stride_h = 3, .stride_w = 3, .pad_h = 3,
       .pad_w = 1, .groups = 2},
      // Padded paths: long rows, asymmetric kernels.
      {.N = 2, .C = 5, .H = 3, .W = 300, .K = 5, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1, .groups = 5},
      {.N = 2, .C = 5, .H = 4, .W = 530, .K = 5, .R = 1, .S = 5, .stride_h = 1, .stride_w = 2, .pad_h = 0,
       .pad_w = 2, .groups = 5},
      // A kernel wider than the input: no interior column at all.
      {.N = 2, .C = 4, .H = 5, .W = 4, .K = 4, .R = 5, .S = 9, .pad_h = 2, .pad_w = 4, .groups = 4},
      {.N = 2, .C = 4, .H = 5, .W = 4, .K = 6, .R = 5, .S = 9, .pad_h = 2, .pad_w = 4},
      // Stride 3 (generic stride path), even kernel.
      {.N = 2, .C = 6, .H = 10, .W = 11, .K = 6, .R = 2, .S = 4, .stride_h = 3, .stride_w = 3, .pad_h = 1,
       .pad_w = 1, .groups = 6},
      {.N = 2, .C = 6, .H = 10, .W = 11, .K = 7, .R = 2, .S = 4, .stride_h = 3, .stride_w = 3, .pad_h = 1,
       .pad_w = 1},
      // Five images in four lanes, columns in tiles of 11 output rows with a remainder of 7.
      {.N = 5, .C = 7, .H = 29, .W = 23, .K = 6, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1},
      // Pointwise on the 7x7 map; other group counts fall back to the reference.
      {.N = 3, .C = 17, .H = 7, .W = 7, .K = 9},
      {.N = 2, .C = 6, .H = 7, .W = 8, .K = 4, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1, .groups = 2},
  };
  for (size_t i = 0; i < shapes.size(); ++i) check_fast_against_reference(shapes[i], 300 + i);
}

TEST_CASE("conv2d workspace: per image lane its band or columns and SGEMM packing, then partial weight gradients") {
  auto pack = [](bool trans_b, int64_t M, int64_t N, int64_t K) {
    return (sgemm_pack_floats(trans_b, M, N, K) + 15) / 16 * 16;
  };
  auto round16 = [](size_t n) { return (n + 15) / 16 * 16; };
  auto indirect_pack = [&](int64_t M, int64_t K) { return round16(sgemm_indirect_pack_floats(M, K)); };
  const size_t per_pointer = sizeof(float*) / sizeof(float);
  const Conv2dShape pw{.N = 32, .C = 16, .H = 28, .W = 28, .K = 16};
  CHECK(conv2d_workspace_bytes(pw, ConvPass::forward) == 4 * pack(false, 16, 784, 16) * 4);
  CHECK(conv2d_workspace_bytes(pw, ConvPass::backward_data) == 4 * pack(false, 16, 784, 16) * 4);
  CHECK(conv2d_workspace_bytes(pw, ConvPass::backward_weight) == (4 * pack(true, 16, 16, 784) + 3 * 256) * 4);
  const Conv2dShape dw{.N = 32, .C = 16, .H = 28, .W = 28, .K = 16, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1,
                       .groups = 16};
  CHECK(conv2d_workspace_bytes(dw, ConvPass::backward_weight) == 0);
  const Conv2dShape c15{.N = 32, .C = 16, .H = 28, .W = 28, .K = 16, .R = 1, .S = 5, .pad_h = 0, .pad_w = 2};
  // Forward reads the columns in place: per lane a band of the input (here the whole
  // image, 28 rows padded to 32 wide), a table of the 80 rows of the columns, packed A.
  const size_t band = 16 * 28 * 32, table = round16(80 * per_pointer);
  CHECK(conv2d_workspace_bytes(c15, ConvPass::forward) == 4 * (band + table + indirect_pack(16, 80)) * 4);
  // Backward data is the forward conv of dy with the flipped kernel (16 x 16 x 1 x 5):
  // the same band, after the flipped weights.
  CHECK(conv2d_workspace_bytes(c15, ConvPass::backward_data) ==
        (16 * 16 * 5 + 4 * (band + table + indirect_pack(16, 80))) * 4);
  // The weight gradient packs its panels from the same band (a tile of 784 pixels deep),
  // and every lane but the first has a partial sum.
  auto gathered_pack = [&](int64_t M, int64_t N, int64_t K) { return round16(sgemm_gathered_pack_floats(M, N, K)); };
  CHECK(conv2d_workspace_bytes(c15, ConvPass::backward_weight) ==
        (4 * (band + table + gathered_pack(16, 80, 784)) + 3 * 16 * 80) * 4);
  // Strided rows keep the columns of a tile of output rows (a 1x5 of a reduction cell,
  // stride 2 along rows): 256 / 14 -> 18 rows of 14 pixels, not the whole image.
  Conv2dShape strided = c15;
  strided.stride_w = 2;
  const size_t cols_s = 16 * 5 * 18 * 14;
  CHECK(conv2d_workspace_bytes(strided, ConvPass::forward) == 4 * (cols_s + pack(false, 16, 252, 80)) * 4);
  CHECK(conv2d_workspace_bytes(strided, ConvPass::backward_data) == 4 * (cols_s + pack(false, 80, 252, 16)) * 4);
  CHECK(conv2d_workspace_bytes(strided, ConvPass::backward_weight) ==
        (4 * (cols_s + pack(true, 16, 80, 252)) + 3 * 16 * 80) * 4);
  // A band of 3 output rows 300 wide (about 1024 pixels a tile): 5 input rows, 302 wide.
  const Conv2dShape wide{.N = 2, .C = 2, .H = 3, .W = 300, .K = 2, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1};
  CHECK(conv2d_workspace_bytes(wide, ConvPass::forward) ==
        2 * (round16(2 * 5 * 302) + round16(18 * per_pointer) + indirect_pack(2, 18)) * 4);
  // Fewer than 8 input channels (a stem): backward data keeps the columns.
  CHECK(conv2d_workspace_bytes(wide, ConvPass::backward_data) == 2 * (round16(18 * 300) + pack(false, 18, 300, 2)) * 4);
  // One image: one lane, whose parallel sgemm packs into the lane's planned memory too.
  Conv2dShape one = c15;
  one.N = 1;
  CHECK(conv2d_workspace_bytes(one, ConvPass::backward_weight) == (band + table + gathered_pack(16, 80, 784)) * 4);
  CHECK(conv2d_workspace_bytes(c15, ConvPass::forward) % 64 == 0);
  CHECK(conv2d_workspace_bytes(c15, ConvPass::backward_data) % 64 == 0);
}

TEST_CASE("conv2d backward weight is bit-identical on 1 and 2 threads") {
  const int64_t groups = GENERATE(1, 16);
  const int64_t R = GENERATE(1, 3);
  Conv2dShape s{.N = 8, .C = 16, .H = 14, .W = 14, .K = 16, .R = R, .S = R, .pad_h = R / 2, .pad_w = R / 2,
                .groups = groups};
  INFO(describe(s));
  auto x = test::random<float>(x_numel(s), 5);
  auto dy = test::random<float>(y_numel(s), 6);
  std::vector<float> ws(conv2d_workspace_bytes(s, ConvPass::backward_weight) / 4 + 1);
  std::vector<float> dw1(size_t(s.weight_numel())), dw2(size_t(s.weight_numel()));
  {
    test::ThreadGuard one(1);
    conv2d_backward_weight(s, x.data(), dy.data(), dw1.data(), ws.data());
  }
  {
    test::ThreadGuard two(2);
    conv2d_backward_weight(s, x.data(), dy.data(), dw2.data(), ws.data());
  }
  CHECK(test::bit_identical(dw1, dw2));
}

TEST_CASE("conv2d: a kernel larger than the padded input gives an empty output and is rejected") {
  Conv2dShape s{.N = 1, .C = 3, .H = 12, .W = 19, .K = 3, .R = 7, .S = 7, .stride_h = 2, .stride_w = 2, .dil_h = 2,
                .dil_w = 2, .groups = 3};
  CHECK(s.P() == 0);  // (12 - 13) / 2 + 1 would be 1 with truncating division
  CHECK(s.Q() == 4);
  std::vector<float> x(x_numel(s)), w(size_t(s.weight_numel())), y(16);
  CHECK_THROWS_AS(conv2d_forward(s, x.data(), w.data(), y.data(), nullptr), Error);
  CHECK(Pool2dShape{.H = 2, .W = 2, .R = 5, .S = 5, .pad_h = 1, .pad_w = 1}.P() == 0);
}

TEST_CASE("conv2d forward reading the columns in place gives the bits of SGEMM on copied columns") {
  // The indirect path (stride 1 along rows, rows of 12 pixels or more) must run the same
  // FMA chains as im2col + sgemm: build each image's whole columns here and compare bits.
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  INFO("isa " << isa_name(isa));
  const std::vector<Conv2dShape> shapes = {
      {.N = 5, .C = 16, .H = 28, .W = 28, .K = 16, .R = 1, .S = 5, .pad_h = 0, .pad_w = 2},
      {.N = 2, .C = 16, .H = 28, .W = 28, .K = 16, .R = 5, .S = 1, .pad_h = 2, .pad_w = 0},
      {.N = 1, .C = 12, .H = 17, .W = 19, .K = 13, .R = 3, .S = 3, .stride_h = 2, .pad_h = 2, .pad_w = 2,
       .dil_h = 2, .dil_w = 2},
      {.N = 3, .C = 40, .H = 14, .W = 14, .K = 24, .R = 3, .S = 3, .pad_h = 1, .pad_w = 1},  // CRS 360: 2 passes
  };
  for (const Conv2dShape& s : shapes) {
    INFO(describe(s));
    REQUIRE(s.Q() >= 12);
    const int64_t P = s.P(), Q = s.Q(), CRS = s.C * s.R * s.S;
    auto x = test::random<float>(x_numel(s), 41);
    auto w = test::random<float>(size_t(s.weight_numel()), 42);
    Workspace ws(s, ConvPass::forward);
    std::vector<float> y(y_numel(s), NAN), want(y_numel(s));
    conv2d_forward(s, x.data(), w.data(), y.data(), ws.data());
    std::vector<float> cols(size_t(CRS * P * Q));
    for (int64_t n = 0; n < s.N; ++n) {
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t)
            for (int64_t p = 0; p < P; ++p)
              for (int64_t q = 0; q < Q; ++q) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h, v = q * s.stride_w - s.pad_w + t * s.dil_w;
                cols[size_t(((c * s.R + r) * s.S + t) * P * Q + p * Q + q)] =
                    h >= 0 && h < s.H && v >= 0 && v < s.W ? x[size_t(((n * s.C + c) * s.H + h) * s.W + v)] : 0.0f;
              }
      sgemm(false, false, s.K, P * Q, CRS, 1.0f, w.data(), CRS, cols.data(), P * Q, 0.0f,
            want.data() + n * s.K * P * Q, P * Q);
    }
    CHECK(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) == 0);
    CHECK(ws.canary_intact());
  }
}
