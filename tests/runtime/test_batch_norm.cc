// Batch norm: reference backward against finite differences (double, affine and not),
// fast kernels against the reference (float), running-statistics values worked by hand,
// inference mode, non-affine, and bit-identical results on 1 and 2 threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "runtime/kernels/batch_norm.h"
#include "runtime/kernels/reference.h"
#include "tests/runtime/kernel_test_util.h"

using namespace onnas;
using namespace onnas::kernels;

TEST_CASE("reference batch norm backward matches central finite differences") {
  const bool affine = GENERATE(true, false);
  BatchNormShape s{.N = 3, .C = 2, .HW = 5};
  INFO("affine " << affine);
  const size_t n = size_t(s.N * s.C * s.HW);
  auto x = test::random<double>(n, 41);
  auto gamma = test::random<double>(2, 42, 0.5, 1.5);
  auto beta = test::random<double>(2, 43);
  const auto g = test::random<double>(n, 44);
  std::vector<double> y(n), mean(2), rstd(2);
  auto loss = [&] {
    ref::batch_norm_forward_train<double>(s, x.data(), affine ? gamma.data() : nullptr, affine ? beta.data() : nullptr,
                                          y.data(), mean.data(), rstd.data(), nullptr, nullptr);
    return test::weighted_sum(y, g);
  };
  loss();
  std::vector<double> dx(n), dgamma(2), dbeta(2);
  ref::batch_norm_backward<double>(s, x.data(), g.data(), affine ? gamma.data() : nullptr, mean.data(), rstd.data(),
                                   dx.data(), dgamma.data(), dbeta.data());
  test::expect_close(dx, test::numeric_grad(x, loss), 1e-5, 1e-7, "dx");
  if (affine) {
    test::expect_close(dgamma, test::numeric_grad(gamma, loss), 1e-6, 1e-7, "dgamma");
    test::expect_close(dbeta, test::numeric_grad(beta, loss), 1e-6, 1e-7, "dbeta");
  }
}

TEST_CASE("batch norm kernels match the reference") {
  const Isa isa = GENERATE(from_range(test::available_isas()));
  test::IsaGuard guard(isa);
  const int64_t N = GENERATE(1, 2, 5);
  const int64_t C = GENERATE(3, 17);
  const int64_t HW = GENERATE(2, 49, 91, 784);
  const double offset = GENERATE(0.0, 50.0);  // a mean far from 0 exercises the shifted sums
  const bool affine = GENERATE(true, false);
  BatchNormShape s{.N = N, .C = C, .HW = HW};
  INFO("N " << N << " C " << C << " HW " << HW << " offset " << offset << " affine " << affine << " isa "
            << isa_name(isa));
  const size_t n = size_t(N * C * HW);
  const auto x = test::random<float>(n, 51, offset - 2, offset + 2);
  const auto dy = test::random<float>(n, 52);
  const auto gamma = test::random<float>(size_t(C), 53, 0.5, 1.5);
  const auto beta = test::random<float>(size_t(C), 54);
  const float* g = affine ? gamma.data() : nullptr;
  const float* b = affine ? beta.data() : nullptr;

  const size_t nc = size_t(C);
  std::vector<float> y(n, NAN), y_ref(n), mean(nc), mean_ref(nc), rstd(nc), rstd_ref(nc);
  auto rm = test::random<float>(nc, 55), rv = test::random<float>(nc, 56, 0.5, 2.0);
  auto rm_ref = rm, rv_ref = rv;
  batch_norm_forward_train(s, x.data(), g, b, y.data(), mean.data(), rstd.data(), rm.data(), rv.data());
  ref::batch_norm_forward_train<float>(s, x.data(), g, b, y_ref.data(), mean_ref.data(), rstd_ref.data(),
                                       rm_ref.data(), rv_ref.data());
  test::expect_close(y, y_ref, 1e-4, 2e-4, "train y");
  test::expect_close(mean, mean_ref, 1e-6, 1e-6, "mean");
  test::expect_close(rstd, rstd_ref, 1e-4, 1e-6, "rstd");
  test::expect_close(rm, rm_ref, 1e-6, 1e-6, "running mean");
  test::expect_close(rv, rv_ref, 1e-4, 1e-6, "running var");

  std::vector<float> dx(n, NAN), dx_ref(n), dg(nc, NAN), dg_ref(nc), db(nc, NAN), db_ref(nc);
  batch_norm_backward(s, x.data(), dy.data(), g, mean_ref.data(), rstd_ref.data(), dx.data(), dg.data(), db.data());
  ref::batch_norm_backward<float>(s, x.data(), dy.data(), g, mean_ref.data(), rstd_ref.data(), dx_ref.data(),
                                  dg_ref.data(), db_ref.data());
  test::expect_close(dx, dx_ref, 1e-4, 2e-4, "dx");
  test::expect_close(dg, dg_ref, 1e-4, 1e-3, "dgamma");
  test::expect_close(db, db_ref, 1e-4, 1e-3, "dbeta");

  // dgamma / dbeta may be null (non-affine): dx alone.
  std::vector<float> dx2(n, NAN);
  batch_norm_backward(s, x.data(), dy.data(), g, mean_ref.data(), rstd_ref.data(), dx2.data(), nullptr, nullptr);
  CHECK(test::bit_identical(dx, dx2));

  batch_norm_forward_infer(s, x.data(), g, b, rm_ref.data(), rv_ref.data(), y.data());
  ref::batch_norm_forward_infer<float>(s, x.data(), g, b, rm_ref.data(), rv_ref.data(), y_ref.data());
  test::expect_close(y, y_ref, 1e-4, 1e-3, "infer y");
}

TEST_CASE("batch norm running statistics follow PyTorch (momentum 0.1, unbiased running var)") {
  // One channel, N = 2, HW = 2: values 1, 2 | 3, 4. Mean 2.5, biased var 1.25, unbiased 5/3.
  BatchNormShape s{.N = 2, .C = 1, .HW = 2};
  std::vector<float> x = {1, 2, 3, 4}, y(4);
  float mean = 0, rstd = 0, running_mean = 0.0f, running_var = 1.0f;
  batch_norm_forward_train(s, x.data(), nullptr, nullptr, y.data(), &mean, &rstd, &running_mean, &running_var);
  CHECK(mean == Approx(2.5f));
  CHECK(rstd == Approx(1.0 / std::sqrt(1.25 + 1e-5)));
  CHECK(running_mean == Approx(0.25f));
  CHECK(running_var == Approx(0.9 * 1.0 + 0.1 * 5.0 / 3.0));
  CHECK(y[0] == Approx(-1.5 / std::sqrt(1.25 + 1e-5)));  // normalized with the biased variance

  // Without running buffers (null), training still normalizes.
  batch_norm_forward_train(s, x.data(), nullptr, nullptr, y.data(), &mean, &rstd, nullptr, nullptr);
  CHECK(y[3] == Approx(1.5 / std::sqrt(1.25 + 1e-5)));

  // One value per channel cannot be trained on (PyTorch raises too).
  BatchNormShape single{.N = 1, .C = 1, .HW = 1};
  CHECK_THROWS_AS(
      batch_norm_forward_train(single, x.data(), nullptr, nullptr, y.data(), &mean, &rstd, nullptr, nullptr), Error);
}

TEST_CASE("batch norm inference uses the running statistics, non-affine is gamma 1, beta 0") {
  BatchNormShape s{.N = 2, .C = 2, .HW = 3};
  const auto x = test::random<float>(12, 61);
  const std::vector<float> rm = {0.5f, -1.0f}, rv = {4.0f, 0.25f}, gamma = {2.0f, 3.0f}, beta = {0.1f, -0.2f};
  std::vector<float> y(12);
  batch_norm_forward_infer(s, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), y.data());
  for (int64_t i = 0; i < 12; ++i) {
    const int64_t c = (i / 3) % 2;
    CHECK(y[size_t(i)] == Approx((x[size_t(i)] - rm[c]) / std::sqrt(rv[c] + 1e-5) * gamma[c] + beta[c]));
  }
  const std::vector<float> ones = {1, 1}, zeros = {0, 0};
  std::vector<float> y_plain(12), y_unit(12);
  batch_norm_forward_infer(s, x.data(), nullptr, nullptr, rm.data(), rv.data(), y_plain.data());
  batch_norm_forward_infer(s, x.data(), ones.data(), zeros.data(), rm.data(), rv.data(), y_unit.data());
  test::expect_close(y_plain, y_unit, 1e-6, 1e-7, "non-affine");
  // In place, as the graph runs it (the op lets y take x's place): the same values.
  std::vector<float> in_place(x.begin(), x.end());
  batch_norm_forward_infer(s, in_place.data(), gamma.data(), beta.data(), rm.data(), rv.data(), in_place.data());
  CHECK(in_place == y);
}

TEST_CASE("batch norm is bit-identical on 1 and 2 threads") {
  BatchNormShape s{.N = 8, .C = 17, .HW = 196};
  const size_t n = size_t(s.N * s.C * s.HW);
  const auto x = test::random<float>(n, 71), dy = test::random<float>(n, 72);
  const auto gamma = test::random<float>(17, 73), beta = test::random<float>(17, 74);
  struct Out {
    std::vector<float> y, mean, rstd, rm, rv, dx, dg, db;
  };
  auto run = [&](int threads) {
    test::ThreadGuard guard(threads);
    Out o{std::vector<float>(n), std::vector<float>(17), std::vector<float>(17), std::vector<float>(17, 0.f),
          std::vector<float>(17, 1.f), std::vector<float>(n), std::vector<float>(17), std::vector<float>(17)};
    batch_norm_forward_train(s, x.data(), gamma.data(), beta.data(), o.y.data(), o.mean.data(), o.rstd.data(),
                             o.rm.data(), o.rv.data());
    batch_norm_backward(s, x.data(), dy.data(), gamma.data(), o.mean.data(), o.rstd.data(), o.dx.data(), o.dg.data(),
                        o.db.data());
    return o;
  };
  const Out a = run(1), b = run(2);
  CHECK(test::bit_identical(a.y, b.y));
  CHECK(test::bit_identical(a.mean, b.mean));
  CHECK(test::bit_identical(a.rstd, b.rstd));
  CHECK(test::bit_identical(a.rv, b.rv));
  CHECK(test::bit_identical(a.dx, b.dx));
  CHECK(test::bit_identical(a.dg, b.dg));
  CHECK(test::bit_identical(a.db, b.db));
}
