// Linear, softmax and softmax cross-entropy: reference backward against finite
// differences (double), fast kernels against the reference (float), stability on large
// logits, and the error for a label out of range.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "runtime/kernels/dense.h"
#include "runtime/kernels/reference.h"
#include "tests/runtime/kernel_test_util.h"

using namespace onnas;
using namespace onnas::kernels;

TEST_CASE("reference dense backward matches central finite differences") {
  SECTION("linear") {
    const int64_t N = 3, I = 5, O = 4;
    auto x = test::random<double>(size_t(N * I), 131), w = test::random<double>(size_t(O * I), 132),
         b = test::random<double>(size_t(O), 133);
    const auto g = test::random<double>(size_t(N * O), 134);
    std::vector<double> y(size_t(N * O));
    auto loss = [&] {
      ref::linear_forward<double>(N, I, O, x.data(), w.data(), b.data(), y.data());
      return test::weighted_sum(y, g);
    };
    std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
    ref::linear_backward<double>(N, I, O, x.data(), w.data(), g.data(), dx.data(), dw.data(), db.data());
    test::expect_close(dx, test::numeric_grad(x, loss), 1e-6, 1e-7, "dx");
    test::expect_close(dw, test::numeric_grad(w, loss), 1e-6, 1e-7, "dw");
    test::expect_close(db, test::numeric_grad(b, loss), 1e-6, 1e-7, "db");
  }
  SECTION("softmax") {
    auto x = test::random<double>(4 * 7, 135, -3, 3);
    const auto g = test::random<double>(4 * 7, 136);
    std::vector<double> y(x.size());
    auto loss = [&] {
      ref::softmax_forward<double>(4, 7, x.data(), y.data());
      return test::weighted_sum(y, g);
    };
    loss();
    std::vector<double> dx(x.size());
    ref::softmax_backward<double>(4, 7, y.data(), g.data(), dx.data());
    test::expect_close(dx, test::numeric_grad(x, loss), 1e-6, 1e-8, "dx");
  }
  SECTION("softmax cross-entropy") {
    const int64_t N = 5, K = 10;
    auto z = test::random<double>(size_t(N * K), 137, -4, 4);
    const std::vector<int32_t> labels = {0, 9, 3, 3, 7};
    std::vector<double> probs(z.size());
    auto loss = [&] { return ref::softmax_xent_forward<double>(N, K, z.data(), labels.data(), probs.data()); };
    loss();
    std::vector<double> dz(z.size());
    ref::softmax_xent_backward<double>(N, K, probs.data(), labels.data(), 1.0, dz.data());
    test::expect_close(dz, test::numeric_grad(z, loss), 1e-6, 1e-8, "dlogits");
  }
}

TEST_CASE("linear kernels match the reference") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  const int64_t N = GENERATE(1, 32), I = GENERATE(3, 64), O = GENERATE(10, 17);
  const bool bias = GENERATE(true, false);
  INFO("N " << N << " I " << I << " O " << O << " bias " << bias << " isa " << isa_name(isa));
  const auto x = test::random<float>(size_t(N * I), 141), w = test::random<float>(size_t(O * I), 142),
             b = test::random<float>(size_t(O), 143), dy = test::random<float>(size_t(N * O), 144);
  const float* bp = bias ? b.data() : nullptr;
  std::vector<float> y(size_t(N * O), NAN), y_ref(y.size());
  linear_forward(N, I, O, x.data(), w.data(), bp, y.data());
  ref::linear_forward<float>(N, I, O, x.data(), w.data(), bp, y_ref.data());
  test::expect_close(y, y_ref, 1e-5, 1e-5, "y");

  std::vector<float> dx(x.size(), NAN), dx_ref(x.size()), dw(w.size(), NAN), dw_ref(w.size()), db(b.size(), NAN),
      db_ref(b.size());
  linear_backward(N, I, O, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  ref::linear_backward<float>(N, I, O, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(), db_ref.data());
  test::expect_close(dx, dx_ref, 1e-5, 1e-5, "dx");
  test::expect_close(dw, dw_ref, 1e-5, 1e-5, "dw");
  test::expect_close(db, db_ref, 1e-5, 1e-5, "db");

  // dx and db are optional.
  std::vector<float> dw2(w.size(), NAN);
  linear_backward(N, I, O, x.data(), w.data(), dy.data(), nullptr, dw2.data(), nullptr);
  CHECK(dw2 == dw);
}

TEST_CASE("softmax and cross-entropy kernels match the reference") {
  const int64_t rows = GENERATE(1, 25, 32), n = GENERATE(2, 10, 1000);
  const double spread = GENERATE(1.0, 30.0);
  INFO("rows " << rows << " n " << n << " spread " << spread);
  const auto x = test::random<float>(size_t(rows * n), 151, -spread, spread);
  const auto dy = test::random<float>(x.size(), 152);
  std::vector<float> y(x.size(), NAN), y_ref(x.size());
  softmax_forward(rows, n, x.data(), y.data());
  ref::softmax_forward<float>(rows, n, x.data(), y_ref.data());
  test::expect_close(y, y_ref, 1e-5, 1e-7, "softmax");
  std::vector<float> dx(x.size(), NAN), dx_ref(x.size());
  softmax_backward(rows, n, y_ref.data(), dy.data(), dx.data());
  ref::softmax_backward<float>(rows, n, y_ref.data(), dy.data(), dx_ref.data());
  test::expect_close(dx, dx_ref, 1e-5, 1e-6, "softmax backward");

  std::vector<int32_t> labels(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) labels[size_t(r)] = int32_t((r * 7 + 3) % n);
  std::vector<float> probs(x.size(), NAN), probs_ref(x.size());
  const float loss = softmax_xent_forward(rows, n, x.data(), labels.data(), probs.data());
  const float loss_ref = ref::softmax_xent_forward<float>(rows, n, x.data(), labels.data(), probs_ref.data());
  CHECK(loss == Approx(loss_ref).epsilon(1e-5));
  test::expect_close(probs, probs_ref, 1e-5, 1e-7, "probs");
  std::vector<float> dz(x.size(), NAN), dz_ref(x.size());
  softmax_xent_backward(rows, n, probs_ref.data(), labels.data(), 2.0f, dz.data());
  ref::softmax_xent_backward<float>(rows, n, probs_ref.data(), labels.data(), 2.0f, dz_ref.data());
  test::expect_close(dz, dz_ref, 1e-5, 1e-7, "dlogits");
}

TEST_CASE("softmax cross-entropy is stable on large logits and rejects bad labels") {
  // Logits of 1000 overflow exp() without the max subtraction.
  const std::vector<float> z = {1000.0f, 0.0f, -1000.0f, 1000.0f, 999.0f, 998.0f};
  std::vector<float> probs(6);
  const std::vector<int32_t> good = {2, 0};
  const float loss = softmax_xent_forward(2, 3, z.data(), good.data(), probs.data());
  CHECK(std::isfinite(loss));
  // Row 0: -log softmax[2] = 2000; row 1: log(1 + e^-1 + e^-2).
  CHECK(loss == Approx((2000.0 + std::log(1 + std::exp(-1.0) + std::exp(-2.0))) / 2));
  for (float p : probs) CHECK(std::isfinite(p));

  const std::vector<int32_t> bad = {1, 3};
  CHECK_THROWS_AS(softmax_xent_forward(2, 3, z.data(), bad.data(), probs.data()), Error);
  CHECK_THROWS_WITH(softmax_xent_forward(2, 3, z.data(), bad.data(), probs.data()),
                    Catch::Contains("row 1") && Catch::Contains("label 3"));
  const std::vector<int32_t> negative = {-1, 0};
  CHECK_THROWS_WITH(softmax_xent_forward(2, 3, z.data(), negative.data(), probs.data()),
                    Catch::Contains("row 0") && Catch::Contains("label -1"));
}
