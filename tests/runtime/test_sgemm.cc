// SGEMM against the double-accumulating reference, on every ISA the CPU has; thread-
// count independence; no allocation once warm.
#include <catch2/catch.hpp>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu.h"
#include "runtime/kernels/sgemm.h"
#include "runtime/tensor.h"
#include "runtime/threading.h"

// Counts every heap allocation of this test executable.
#include "tests/alloc_counter.h"

using namespace onnas;
using onnas::kernels::sgemm;
using onnas::kernels::sgemm_reference;

namespace {

// Restores the ISA and thread count a test changes, however it exits.
struct IsaGuard {
  Isa saved = active_isa();
  ~IsaGuard() { set_isa(saved); }
};
struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

struct Problem {
  bool ta = false, tb = false;
  int64_t M = 1, N = 1, K = 1;
  float alpha = 1.0f, beta = 0.0f;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // leading dimension beyond the minimum

  int64_t lda() const { return (ta ? M : K) + pad_a; }
  int64_t ldb() const { return (tb ? K : N) + pad_b; }
  int64_t ldc() const { return N + pad_c; }
  std::string str() const {
    return "ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) + " M=" + std::to_string(M) +
           " N=" + std::to_string(N) + " K=" + std::to_string(K) + " alpha=" + std::to_string(alpha) +
           " beta=" + std::to_string(beta) + " pads=" + std::to_string(pad_a) + "," + std::to_string(pad_b) + "," +
           std::to_string(pad_c);
  }
};

struct Operands {
  std::vector<float> A, B, C;
};

// Planned packing memory of `floats` floats (64-byte aligned, as planned memory is) with
// a canary tail: a kernel must stay inside the size it asked for.
class CanaryPack {
 public:
  explicit CanaryPack(size_t floats) : floats_(floats), mem_((floats + kCanary) * sizeof(float)) { reset(); }
  float* data() { return static_cast<float*>(mem_.data()); }
  void reset() { std::fill(data(), data() + floats_ + kCanary, 7.0f); }
  bool intact() {
    for (size_t i = floats_; i < floats_ + kCanary; ++i)
      if (data()[i] != 7.0f) return false;
    return true;
  }

 private:
  static constexpr size_t kCanary = 64;
  size_t floats_;
  onnas::Buffer mem_;
};

Operands make_operands(const Problem& p, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Operands o;
  o.A.resize(size_t((p.ta ? p.K : p.M) * p.lda()));
  o.B.resize(size_t((p.tb ? p.N : p.K) * p.ldb()));
  o.C.resize(size_t(p.M * p.ldc()));
  for (float& x : o.A) x = u(rng);
  for (float& x : o.B) x = u(rng);
  for (float& x : o.C) x = u(rng);
  return o;
}

std::vector<float> run(const Problem& p, const Operands& o) {
  std::vector<float> c = o.C;
  sgemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, o.A.data(), p.lda(), o.B.data(), p.ldb(), p.beta, c.data(), p.ldc());
  return c;
}

// Checks sgemm against the reference element by element, with a bound on float
// rounding: a sum of K products in any order is within ~K eps of sum |a||b|.
void check_against_reference(const Problem& p, std::mt19937& rng, bool nan_c = false) {
  INFO(p.str() << " isa=" << isa_name(active_isa()));
  Operands o = make_operands(p, rng);
  if (nan_c) std::fill(o.C.begin(), o.C.end(), std::nanf(""));
  std::vector<float> got = run(p, o);
  std::vector<float> want = o.C;
  sgemm_reference(p.ta, p.tb, p.M, p.N, p.K, p.alpha, o.A.data(), p.lda(), o.B.data(), p.ldb(), p.beta, want.data(),
                  p.ldc());
  int64_t bad = 0;
  for (int64_t i = 0; i < p.M; ++i) {
    for (int64_t j = 0; j < p.ldc(); ++j) {
      const size_t at = size_t(i * p.ldc() + j);
      if (j >= p.N) {
        // Padding between rows of C must be left alone.
        if (std::memcmp(&got[at], &o.C[at], sizeof(float)) != 0) ++bad;
        continue;
      }
      double abs_sum = 0.0;
      for (int64_t k = 0; k < p.K; ++k) {
        const float a = p.ta ? o.A[size_t(k * p.lda() + i)] : o.A[size_t(i * p.lda() + k)];
        const float b = p.tb ? o.B[size_t(j * p.ldb() + k)] : o.B[size_t(k * p.ldb() + j)];
        abs_sum += std::fabs(double(a) * double(b));
      }
      const double c0 = p.beta == 0.0f ? 0.0 : std::fabs(double(p.beta) * o.C[at]);
      const double tol = 2.0 * double(p.K + 4) * FLT_EPSILON * (std::fabs(double(p.alpha)) * abs_sum + c0) + 1e-30;
      if (!(std::fabs(double(got[at]) - double(want[at])) <= tol)) {
        if (bad < 5) UNSCOPED_INFO("C[" << i << "][" << j << "] = " << got[at] << ", want " << want[at]);
        ++bad;
      }
    }
  }
  CHECK(bad == 0);
}

// Every ISA this build and CPU have (AVX2 / AVX-512 on x86-64, NEON on aarch64), and the
// portable reference kernel.
std::vector<Isa> isas_to_test() {
  std::vector<Isa> out;
  for (Isa isa : kAllIsas)
    if (isa_available(isa)) out.push_back(isa);
  return out;
}

}  // namespace

TEST_CASE("sgemm matches the reference on edge sizes, transposes, alpha/beta and padding") {
  IsaGuard isa_guard;
  const int64_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 47, 48, 49, 97};
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> pick(0, int(std::size(sizes)) - 1);
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        for (float beta : {0.0f, 1.0f, 0.5f}) {
          for (int rep = 0; rep < 12; ++rep) {
            Problem p;
            p.ta = ta;
            p.tb = tb;
            p.M = sizes[pick(rng)];
            p.N = sizes[pick(rng)];
            p.K = sizes[pick(rng)];
            p.alpha = rep % 3 == 0 ? 1.0f : -0.75f;
            p.beta = beta;
            p.pad_a = rep % 2 ? 3 : 0;
            p.pad_b = rep % 4 >= 2 ? 5 : 0;
            p.pad_c = rep % 3 == 1 ? 7 : 0;
            check_against_reference(p, rng);
          }
        }
      }
    }
  }
}

TEST_CASE("sgemm matches the reference on the search's shapes and on blocked sizes") {
  IsaGuard isa_guard;
  // Search shapes (bench/shapes.h), small M with tiny K, and sizes that cross the
  // KC / NC block boundaries so more than one pass over K and over N happens.
  const int64_t shapes[][3] = {{48, 784, 9},   {16, 784, 48},  {32, 196, 160}, {112, 49, 112}, {32, 10, 64},
                               {16, 50, 9},    {130, 200, 70}, {200, 530, 300}, {257, 1000, 513}, {67, 991, 600}};
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    std::mt19937 rng(99);
    for (auto& s : shapes) {
      for (int t = 0; t < 4; ++t) {
        Problem p;
        p.M = s[0];
        p.N = s[1];
        p.K = s[2];
        p.ta = t & 1;
        p.tb = t & 2;
        p.alpha = 1.5f;
        p.beta = t == 3 ? 0.5f : 0.0f;
        p.pad_c = t == 2 ? 16 : 0;
        check_against_reference(p, rng);
      }
    }
  }
}

TEST_CASE("sgemm with beta == 0 ignores NaN already in C") {
  IsaGuard isa_guard;
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    std::mt19937 rng(7);
    for (int64_t K : {int64_t(0), int64_t(9), int64_t(300)}) {
      Problem p;
      p.M = 19;
      p.N = 53;
      p.K = K;
      p.alpha = 2.0f;
      p.beta = 0.0f;
      check_against_reference(p, rng, /*nan_c=*/true);
    }
  }
}

TEST_CASE("sgemm gives the same bits on 1 and 2 threads") {
  IsaGuard isa_guard;
  ThreadsGuard threads_guard;
  const int64_t shapes[][3] = {{48, 784, 9}, {112, 49, 112}, {256, 256, 256}, {300, 700, 600}, {16, 2000, 80}};
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    std::mt19937 rng(5);
    for (auto& s : shapes) {
      for (int t = 0; t < 4; ++t) {
        Problem p;
        p.M = s[0];
        p.N = s[1];
        p.K = s[2];
        p.ta = t & 1;
        p.tb = t & 2;
        p.beta = 0.5f;
        INFO(p.str() << " isa=" << isa_name(active_isa()));
        Operands o = make_operands(p, rng);
        set_num_threads(1);
        std::vector<float> one = run(p, o);
        set_num_threads(2);
        std::vector<float> two = run(p, o);
        CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("sgemm does not allocate once warm") {
  IsaGuard isa_guard;
  ThreadsGuard threads_guard;
  std::mt19937 rng(3);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (Isa isa : isas_to_test()) {
      set_isa(isa);
      for (int tb = 0; tb < 2; ++tb) {
        Problem p;
        p.M = 300;
        p.N = 600;
        p.K = 400;
        p.tb = tb;
        Operands o = make_operands(p, rng);
        std::vector<float> c = o.C;
        auto call = [&] {
          sgemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, o.A.data(), p.lda(), o.B.data(), p.ldb(), p.beta, c.data(),
                p.ldc());
        };
        call();  // warm-up: grows this thread's packing buffer
        const onnas::test::AllocCounter count;
        call();
        call();
        const int64_t news = count.allocations();  // read before INFO, which allocates
        INFO("threads=" << threads << " isa=" << isa_name(active_isa()) << " tb=" << tb);
        CHECK(news == 0);
      }
    }
  }
}

TEST_CASE("sgemm_serial and sgemm_packed give sgemm's bits, stay inside their packing memory and allocate nothing") {
  struct Case {
    bool ta, tb;
    int64_t M, N, K;
  };
  const Case c = GENERATE(Case{false, false, 16, 784, 80}, Case{true, false, 160, 196, 32},
                          Case{false, true, 32, 160, 196}, Case{false, false, 200, 300, 700},
                          Case{false, true, 7, 5, 3});
  IsaGuard isa_guard;
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    INFO("isa " << isa_name(isa) << " M " << c.M << " N " << c.N << " K " << c.K);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> A(size_t(c.M * c.K)), B(size_t(c.K * c.N));
    for (float& v : A) v = u(rng);
    for (float& v : B) v = u(rng);
    std::vector<float> want(size_t(c.M * c.N), 0.5f), got(want);
    const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
    sgemm(c.ta, c.tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, 0.5f, want.data(), c.N);
    const size_t floats = onnas::kernels::sgemm_pack_floats(c.tb, c.M, c.N, c.K);
    CanaryPack pack(floats);
    float* p = pack.data();
    const onnas::test::AllocCounter count;
    onnas::kernels::sgemm_serial(c.ta, c.tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, 0.5f, got.data(),
                                 c.N, p);
    const int64_t news = count.allocations();
    CHECK(news == 0);
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    CHECK(pack.intact());
    // sgemm_packed: the parallel product in the same planned memory, from cold.
    std::vector<float> par(want.size(), 0.5f);
    pack.reset();
    const onnas::test::AllocCounter count_packed;
    onnas::kernels::sgemm_packed(c.ta, c.tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, 0.5f, par.data(),
                                 c.N, p);
    CHECK(count_packed.allocations() == 0);
    CHECK(std::memcmp(par.data(), want.data(), par.size() * sizeof(float)) == 0);
    CHECK(pack.intact());
  }
}

TEST_CASE("sgemm_indirect gives sgemm's bits on the rows it points at, on every ISA, serial or parallel") {
  // B's rows for output row p lie at rows[k] + p * step inside a larger array, in an
  // order unrelated to k; sgemm on the same rows copied out (each output row its own
  // K x N matrix) must give the same bits. K 300 takes two passes of K; M 13 leaves a
  // part tile; N 7, 28 and 53 cover narrow, one and several column panels.
  struct Case {
    int64_t M, N, K, rows;
    float beta;
  };
  const Case c = GENERATE(Case{16, 28, 80, 5, 0.0f}, Case{13, 53, 300, 3, 0.5f}, Case{64, 7, 144, 7, 0.0f},
                          Case{1, 17, 9, 2, 1.0f});
  const bool parallel = GENERATE(false, true);
  IsaGuard isa_guard;
  ThreadsGuard threads_guard;
  set_num_threads(2);
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    INFO("isa " << isa_name(isa) << " M " << c.M << " N " << c.N << " K " << c.K << " rows " << c.rows
                << " parallel " << parallel);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const int64_t step = c.N + 3, span = (c.rows - 1) * step + c.N;
    std::vector<float> A(size_t(c.M * c.K)), pool(size_t(c.K * (span + 5)));
    for (float& v : A) v = u(rng);
    for (float& v : pool) v = u(rng);
    std::vector<const float*> rows(size_t(c.K));
    for (int64_t k = 0; k < c.K; ++k) rows[size_t(k)] = pool.data() + ((k * 7) % c.K) * (span + 5) + k % 5;
    const int64_t ldc = c.rows * c.N;
    std::vector<float> want(size_t(c.M * ldc)), got(want.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = got[i] = u(rng);
    for (int64_t p = 0; p < c.rows; ++p) {
      std::vector<float> B(size_t(c.K * c.N));
      for (int64_t k = 0; k < c.K; ++k) std::copy_n(rows[size_t(k)] + p * step, c.N, B.begin() + k * c.N);
      sgemm(false, false, c.M, c.N, c.K, 1.0f, A.data(), c.K, B.data(), c.N, c.beta, want.data() + p * c.N, ldc);
    }
    const size_t floats = onnas::kernels::sgemm_indirect_pack_floats(c.M, c.K);
    CanaryPack pack(floats);
    float* p = pack.data();
    const onnas::test::AllocCounter count;
    onnas::kernels::sgemm_indirect(c.M, c.N, c.K, c.rows, 1.0f, A.data(), c.K, rows.data(), step, c.beta,
                                   got.data(), ldc, c.N, parallel, p);
    if (!parallel) CHECK(count.allocations() == 0);
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    CHECK(pack.intact());
  }
}

TEST_CASE("sgemm_gathered matches sgemm on the gathered columns, on every ISA, serial or parallel") {
  // Column j of B holds K values read a run of row_len at a time from b_cols[j], runs
  // b_row_step apart: a weight gradient's columns gathered from a band of input rows.
  // K 784 takes several passes whose cuts fall inside runs; N 80 and 150 leave part
  // panels; M 13 a part tile. Against sgemm on the explicit matrix: the sums are cut at
  // the same K-only passes with the same micro-kernel, so the bits agree.
  struct Case {
    int64_t M, N, K, row_len;
    float beta;
  };
  const Case c = GENERATE(Case{16, 80, 784, 28, 0.0f}, Case{13, 150, 300, 7, 1.0f}, Case{64, 9, 49, 7, 0.5f});
  const bool parallel = GENERATE(false, true);
  IsaGuard isa_guard;
  ThreadsGuard threads_guard;
  set_num_threads(2);
  for (Isa isa : isas_to_test()) {
    set_isa(isa);
    INFO("isa " << isa_name(isa) << " M " << c.M << " N " << c.N << " K " << c.K << " parallel " << parallel);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const int64_t step = c.row_len + 4, out_rows = (c.K + c.row_len - 1) / c.row_len;
    const int64_t span = out_rows * step;
    std::vector<float> A(size_t(c.M * c.K)), pool(size_t(c.N * span));
    for (float& v : A) v = u(rng);
    for (float& v : pool) v = u(rng);
    std::vector<const float*> cols(size_t(c.N));
    for (int64_t j = 0; j < c.N; ++j) cols[size_t(j)] = pool.data() + ((j * 11) % c.N) * span;
    std::vector<float> B(size_t(c.K * c.N));  // B[k][j]
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t j = 0; j < c.N; ++j)
        B[size_t(k * c.N + j)] = cols[size_t(j)][(k / c.row_len) * step + k % c.row_len];
    std::vector<float> want(size_t(c.M * c.N)), got(want.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = got[i] = u(rng);
    sgemm(false, false, c.M, c.N, c.K, 1.0f, A.data(), c.K, B.data(), c.N, c.beta, want.data(), c.N);
    const size_t floats = onnas::kernels::sgemm_gathered_pack_floats(c.M, c.N, c.K);
    CanaryPack pack(floats);
    float* p = pack.data();
    onnas::kernels::sgemm_gathered(c.M, c.N, c.K, 1.0f, A.data(), c.K, cols.data(), c.row_len, step, c.beta,
                                   got.data(), c.N, parallel, p);
    // Same micro-kernel and passes as sgemm: the same bits.
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    CHECK(pack.intact());
  }
}
