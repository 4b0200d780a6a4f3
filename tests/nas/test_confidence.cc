// The Student-t interval of eval-fewshot: quantiles against published table values,
// the interval against a hand computation, and the n < 2 case.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "nas/confidence.h"
#include "runtime/error.h"

using namespace onnas;
using namespace onnas::nas;

TEST_CASE("Student-t quantiles match the tables") {
  // t_{0.975}(dof), two-sided 95%: the standard table.
  const std::vector<std::pair<double, double>> table = {{1, 12.7062}, {2, 4.3027}, {4, 2.7764}, {5, 2.5706},
                                                        {9, 2.2622},  {19, 2.0930}, {29, 2.0452}, {99, 1.9842},
                                                        {599, 1.9639}};
  for (auto [dof, t] : table) CHECK(student_t_quantile(0.975, dof) == Approx(t).epsilon(1e-4));
  CHECK(student_t_quantile(0.995, 10) == Approx(3.1693).epsilon(1e-4));
  CHECK(student_t_quantile(0.025, 5) == Approx(-2.5706).epsilon(1e-4));
  CHECK(student_t_quantile(0.5, 3) == Approx(0.0).margin(1e-12));
  // Many degrees of freedom: the normal quantile.
  CHECK(student_t_quantile(0.975, 1e7) == Approx(1.959964).epsilon(1e-5));
  for (double t : {-3.0, -0.5, 0.0, 0.7, 2.0, 9.0}) CHECK(student_t_cdf(student_t_quantile(student_t_cdf(t, 7), 7), 7) == Approx(student_t_cdf(t, 7)));
  CHECK(student_t_cdf(0.0, 3) == Approx(0.5));
  CHECK(student_t_cdf(1.0, 1) == Approx(0.75));  // Cauchy: 1/2 + atan(1)/pi
  CHECK_THROWS_AS(student_t_quantile(1.0, 3), Error);
  CHECK_THROWS_AS(student_t_quantile(0.5, 0), Error);
}

TEST_CASE("mean_interval: mean +- t * s / sqrt(n), and no interval below two values") {
  const std::vector<double> xs = {0.5, 0.6, 0.7, 0.4, 0.8};
  MeanInterval r = mean_interval(xs);
  CHECK(r.n == 5);
  CHECK(r.mean == Approx(0.6));
  CHECK(r.stddev == Approx(std::sqrt(0.1 / 4)));             // sum of squares 0.1, n - 1 = 4
  CHECK(r.t == Approx(2.7764).epsilon(1e-4));               // 4 degrees of freedom, not 1.96
  CHECK(r.half_width == Approx(2.7764 * std::sqrt(0.025) / std::sqrt(5.0)).epsilon(1e-4));
  CHECK(r.percent_text() == "60.00% +- 19.63% (95% Student-t interval over 5 tasks)");
  MeanInterval one = mean_interval(std::vector<double>{0.3});
  CHECK_FALSE(one.has_interval());
  CHECK(one.mean == Approx(0.3));
  CHECK(one.percent_text().find("too few for an interval") != std::string::npos);
  CHECK(mean_interval(std::vector<double>{}).n == 0);
  CHECK(mean_interval(xs, 0.99).half_width > r.half_width);
}
