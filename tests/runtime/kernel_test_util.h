// Shared helpers for the kernel tests: seeded random fill, tolerant comparison with a
// readable first mismatch, central finite differences, and RAII guards that force an
// ISA or a thread count for one test and restore the previous one afterwards.
//
//   auto x = test::random<double>(n, /*seed=*/1);
//   auto num = test::numeric_grad(x, [&] { return loss(x); });
//   test::expect_close(analytic, num, 1e-6, 1e-6, "dx");
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu.h"
#include "runtime/threading.h"

namespace onnas::test {

template <typename T>
std::vector<T> random(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& e : v) e = T(dist(gen));
  return v;
}

template <typename To, typename From>
std::vector<To> cast(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

// Every |got - want| <= atol + rtol * |want|; on failure, reports how many entries are
// off and the first one, so a sweep's failure names the place.
template <typename A, typename B>
void expect_close(const std::vector<A>& got, const std::vector<B>& want, double rtol, double atol,
                  const std::string& what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), w = double(want[i]);
    const double err = std::abs(g - w);
    if (!(err <= atol + rtol * std::abs(w))) {
      if (bad == 0) first = i;
      ++bad;
    }
    if (err > worst || std::isnan(err)) worst = err;
  }
  INFO(what << ": " << bad << " of " << got.size() << " off; max error " << worst);
  if (bad) INFO("first at " << first << ": got " << double(got[first]) << ", want " << double(want[first]));
  CHECK(bad == 0);
}

template <typename T>
bool bit_identical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Central differences of loss() with respect to each entry of x (x is perturbed in
// place and restored). Entries with skip(i) true are left at 0.
template <typename Loss, typename Skip>
std::vector<double> numeric_grad(std::vector<double>& x, Loss&& loss, Skip&& skip, double eps = 1e-6) {
  std::vector<double> g(x.size(), 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    if (skip(i)) continue;
    const double keep = x[i];
    x[i] = keep + eps;
    const double up = loss();
    x[i] = keep - eps;
    const double down = loss();
    x[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

template <typename Loss>
std::vector<double> numeric_grad(std::vector<double>& x, Loss&& loss, double eps = 1e-6) {
  return numeric_grad(x, loss, [](size_t) { return false; }, eps);
}

// sum(y * g): the scalar whose gradient in y is g, used to turn a backward into a check.
inline double weighted_sum(const std::vector<double>& y, const std::vector<double>& g) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * g[i];
  return s;
}

// Zeros the entries of `v` where skip(i), so an analytic gradient compares with a
// masked numeric one.
template <typename Skip>
std::vector<double> masked(std::vector<double> v, Skip&& skip) {
  for (size_t i = 0; i < v.size(); ++i)
    if (skip(i)) v[i] = 0.0;
  return v;
}

// The ISAs this build and machine can run, each a separate code path in the kernels:
// reference everywhere, AVX2 / AVX-512 on x86-64, NEON on aarch64 (also under QEMU).
inline std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (isa_available(isa)) out.push_back(isa);
  return out;
}

class IsaGuard {
 public:
  explicit IsaGuard(Isa isa) : saved_(active_isa()) { set_isa(isa); }
  ~IsaGuard() { set_isa(saved_); }
  IsaGuard(const IsaGuard&) = delete;
  IsaGuard& operator=(const IsaGuard&) = delete;

 private:
  Isa saved_;
};

class ThreadGuard {
 public:
  explicit ThreadGuard(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ThreadGuard() { set_num_threads(saved_); }
  ThreadGuard(const ThreadGuard&) = delete;
  ThreadGuard& operator=(const ThreadGuard&) = delete;

 private:
  int saved_;
};

}  // namespace onnas::test
