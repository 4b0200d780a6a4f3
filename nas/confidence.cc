#include "nas/confidence.h"

#include <cmath>

#include "runtime/error.h"

namespace onnas::nas {

namespace {

// The continued fraction of the regularized incomplete beta function I_x(a, b)
// (modified Lentz's method), for x < (a + 1) / (a + b + 2) where it converges fast.
double beta_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::abs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + num * d;
    c = 1.0 + num / c;
    if (std::abs(d) < kTiny) d = kTiny;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + num * d;
    c = 1.0 + num / c;
    if (std::abs(d) < kTiny) d = kTiny;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double step = d * c;
    h *= step;
    if (std::abs(step - 1.0) < kEps) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_fraction(a, b, x) / a;
  return 1.0 - front * beta_fraction(b, a, 1.0 - x) / b;
}

}  // namespace

double student_t_cdf(double t, double dof) {
  if (!(dof > 0)) fail("Student-t: {} degrees of freedom", dof);
  const double tail = 0.5 * incomplete_beta(0.5 * dof, 0.5, dof / (dof + t * t));  // P(T > |t|)
  return t >= 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double dof) {
  if (!(p > 0 && p < 1)) fail("Student-t: quantile {} is outside (0, 1)", p);
  if (!(dof > 0)) fail("Student-t: {} degrees of freedom", dof);
  if (p < 0.5) return -student_t_quantile(1.0 - p, dof);
  // Bisection on the monotone distribution function: 200 halvings reach double precision.
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, dof) < p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-14 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

MeanInterval mean_interval(std::span<const double> xs, double level) {
  if (!(level > 0 && level < 1)) fail("confidence level {} is outside (0, 1)", level);
  MeanInterval r;
  r.level = level;
  r.n = int64_t(xs.size());
  if (xs.empty()) return r;
  for (double x : xs) r.mean += x;
  r.mean /= double(r.n);
  if (r.n < 2) return r;
  double var = 0;
  for (double x : xs) var += (x - r.mean) * (x - r.mean);
  r.stddev = std::sqrt(var / double(r.n - 1));
  r.t = student_t_quantile(0.5 + 0.5 * level, double(r.n - 1));
  r.half_width = r.t * r.stddev / std::sqrt(double(r.n));
  return r;
}

std::string MeanInterval::percent_text(const char* unit) const {
  if (!has_interval())
    return fmt::format("{:.2f}% (n = {} {}: too few for an interval)", 100 * mean, n, unit);
  return fmt::format("{:.2f}% +- {:.2f}% ({:g}% Student-t interval over {} {})", 100 * mean, 100 * half_width,
                     100 * level, n, unit);
}

}  // namespace onnas::nas
