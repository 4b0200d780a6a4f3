// The mean of n measurements (e.g. the query accuracy of n meta-test tasks) with its
// 95% confidence interval from Student's t distribution with n - 1 degrees of freedom:
// mean +- t * s / sqrt(n), s the sample standard deviation. With few tasks the t
// quantile is well above 1.96 (n = 5: 2.776), so the normal approximation would claim
// too narrow an interval. With n < 2 there is no interval.
//
//   MeanInterval r = mean_interval(accuracies);      // 95%
//   if (r.has_interval()) printf("%.2f +- %.2f", r.mean, r.half_width);
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace onnas::nas {

struct MeanInterval {
  int64_t n = 0;
  double level = 0.95;
  double mean = 0;
  double stddev = 0;      // sample standard deviation (n - 1 in the denominator)
  double t = 0;           // the Student-t quantile used
  double half_width = 0;  // t * stddev / sqrt(n)
  bool has_interval() const { return n >= 2; }
  // "52.29% +- 1.79% (95% Student-t interval over 600 tasks)" for fractions given in
  // [0, 1]; with n < 2, says so.
  std::string percent_text(const char* unit = "tasks") const;
};

// level in (0, 1): 0.95 for the usual 95% interval.
MeanInterval mean_interval(std::span<const double> xs, double level = 0.95);

// The p-quantile of Student's t distribution with `dof` > 0 degrees of freedom (0 < p < 1).
double student_t_quantile(double p, double dof);
// Its distribution function.
double student_t_cdf(double t, double dof);

}  // namespace onnas::nas
