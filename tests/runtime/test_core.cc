// Shape, Buffer, Arena, ParamStore, Rng, parallel_for.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <cstdio>
#include <cstring>

#include "runtime/bf16.h"
#include "runtime/cpu.h"
#include "runtime/heap.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
#include "runtime/threading.h"

using namespace onnas;

TEST_CASE("Shape counts, compares and prints") {
  Shape s{32, 16, 28, 28};
  CHECK(s.rank() == 4);
  CHECK(s.numel() == 32 * 16 * 28 * 28);
  CHECK(s.str() == "[32, 16, 28, 28]");
  CHECK(s == Shape{32, 16, 28, 28});
  CHECK(s != Shape{32, 16, 28});
  CHECK(Shape{}.numel() == 1);
  CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5, 6, 7}), Error);
  CHECK_THROWS_WITH((Shape{2, -1}), Catch::Contains("negative"));
}

TEST_CASE("Buffer is 64-byte aligned and zeroed, Arena views are offsets") {
  Buffer b(100);
  REQUIRE(reinterpret_cast<uintptr_t>(b.data()) % kAlignment == 0);
  for (int i = 0; i < 100; ++i) CHECK(static_cast<unsigned char*>(b.data())[i] == 0);
  Buffer moved = std::move(b);
  CHECK(b.data() == nullptr);
  CHECK(moved.bytes() == 100);

  Arena arena(1024);
  Tensor t = arena.view(256, Shape{4, 4});
  CHECK(static_cast<std::byte*>(t.data()) - arena.base() == 256);
  CHECK(t.bytes() == 64);
}

namespace {
// Resident bytes of the process (/proc/self/statm).
size_t resident_bytes() {
  long size = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  REQUIRE(f != nullptr);
  REQUIRE(std::fscanf(f, "%ld %ld", &size, &resident) == 2);
  std::fclose(f);
  return size_t(resident) * 4096;
}
}  // namespace

TEST_CASE("a large Buffer is resident only once written, and gives its pages back when discarded") {
  constexpr size_t kBytes = size_t(16) << 20;
  const size_t mapped_before = Buffer::mapped_bytes(), dynamic_before = dynamic_memory_bytes();
  const size_t before = resident_bytes();
  Buffer b(kBytes);
  CHECK(Buffer::mapped_bytes() - mapped_before == kBytes);
  CHECK(dynamic_memory_bytes() - dynamic_before >= kBytes);
  const size_t reserved = resident_bytes();
  CHECK(reserved < before + kBytes / 4);  // zero pages, not written: not resident
  auto* p = static_cast<unsigned char*>(b.data());
  CHECK(p[0] == 0);
  CHECK(p[kBytes - 1] == 0);
  std::memset(p, 7, kBytes);
  const size_t written = resident_bytes();
  CHECK(written > reserved + kBytes * 3 / 4);
  b.discard_pages();
#if !ONNAS_EMULATED  // QEMU's user mode (7.2) takes madvise as a hint it may ignore
  CHECK(resident_bytes() < written - kBytes * 3 / 4);
  CHECK(p[12345] == 0);  // on Linux, discarded private anonymous pages read as zero
#endif
  p[12345] = 1;  // and can be written again
  CHECK(p[12345] == 1);
  {
    Buffer moved = std::move(b);
    CHECK(Buffer::mapped_bytes() - mapped_before == kBytes);
  }
  CHECK(Buffer::mapped_bytes() == mapped_before);  // unmapped with the last owner
}

TEST_CASE("ParamStore keeps insertion order, grads and kinds") {
  ParamStore ps;
  Tensor w = ps.add_weight("a.weight", Shape{3, 2});
  ps.add("a.running_mean", Shape{3}, ParamKind::buffer);
  ps.add_weight("alpha.normal", Shape{9, 7}, ParamKind::arch);
  w.f32()[0] = 2.0f;
  CHECK(ps.get("a.weight").f32()[0] == 2.0f);
  ps.grad("a.weight").f32()[1] = 5.0f;
  ps.zero_grads();
  CHECK(ps.grad("a.weight").f32()[1] == 0.0f);
  CHECK_THROWS_WITH(ps.get("missing"), Catch::Contains("missing"));
  CHECK_THROWS_WITH(ps.grad("a.running_mean"), Catch::Contains("has no gradient"));
  CHECK_THROWS_WITH(ps.add("a.weight", Shape{1}, ParamKind::weight), Catch::Contains("defined twice"));
  std::vector<std::string> names;
  for (const auto& e : ps.entries()) names.push_back(e->name);
  CHECK(names == std::vector<std::string>{"a.weight", "a.weight@grad", "a.running_mean", "alpha.normal",
                                          "alpha.normal@grad"});
  CHECK(ps.bytes(ParamKind::arch) == 9 * 7 * 4);
  CHECK(ps.bytes() == (6 + 6 + 3 + 63 + 63) * 4);
}

TEST_CASE("ParamStore gradients can live outside the store, or nowhere") {
  ParamStore ps;
  ps.add_weight("a.weight", Shape{3, 2});
  ps.add("a.running_mean", Shape{3}, ParamKind::buffer);
  const uint64_t v0 = ps.version();
  float outside[6] = {1, 2, 3, 4, 5, 6};
  ps.set_grad_view("a.weight", outside);
  CHECK(ps.version() != v0);
  CHECK(ps.grad("a.weight").f32() == outside);
  CHECK(ps.grad("a.weight").shape() == Shape{3, 2});
  CHECK(ps.bytes(ParamKind::grad) == 0);  // the store's own copy is freed
  ps.zero_grads();
  CHECK(outside[5] == 0.0f);
  const uint64_t v1 = ps.version();
  ps.set_grad_view("a.weight", outside);  // no change, no new version
  CHECK(ps.version() == v1);
  ps.set_grad_view("a.weight", nullptr);
  CHECK(ps.version() != v1);
  CHECK(ps.grad("a.weight").empty());
  CHECK(ps.grad("a.weight").shape() == Shape{3, 2});
  ps.zero_grads();  // skips it
  CHECK_THROWS_WITH(ps.set_grad_view("a.running_mean", outside), Catch::Contains("has no gradient"));
  CHECK_THROWS_WITH(ps.set_grad_view("b", outside), Catch::Contains("'b'"));
}


TEST_CASE("ParamStore lays small tensors end to end in mapped slabs, not one malloc block each") {
  ParamStore ps;
  const size_t mapped0 = Buffer::mapped_bytes();
  std::vector<Tensor> small;
  for (int i = 0; i < 300; ++i) small.push_back(ps.add(fmt::format("t{}", i), Shape{5, 3}, ParamKind::state));
  // 300 tensors of 60 bytes, each rounded to a cache line: the first slab, 64 KiB, mapped.
  CHECK(Buffer::mapped_bytes() - mapped0 == 65536);
  for (size_t i = 0; i < small.size(); ++i) {
    CHECK(reinterpret_cast<uintptr_t>(small[i].data()) % kAlignment == 0);
    for (int64_t k = 0; k < small[i].numel(); ++k) REQUIRE(small[i].f32()[k] == 0.0f);  // zero-filled
    small[i].f32()[14] = float(i);  // the last element: writing it must not reach the next tensor
    if (i > 0) CHECK(static_cast<std::byte*>(small[i].data()) - static_cast<std::byte*>(small[i - 1].data()) == 64);
  }
  for (size_t i = 0; i < small.size(); ++i) CHECK(small[i].f32()[0] == 0.0f);
  CHECK(ps.get("t299").f32()[14] == 299.0f);
  CHECK(ps.bytes(ParamKind::state) == 300 * 60);
  // A tensor of 64 KiB or more has a block of its own.
  ps.add("big", Shape{16384}, ParamKind::buffer);
  CHECK(Buffer::mapped_bytes() - mapped0 == 2 * 65536);
  // A full slab starts another of twice its size, up to 1 MiB: 32,000 bytes each, 1 in
  // the first slab's 46,336 left, then 4 in 128 KiB, 8 in 256 KiB, 16 in 512 KiB, 11 in 1 MiB.
  for (int i = 0; i < 40; ++i) ps.add(fmt::format("mid{}", i), Shape{8000}, ParamKind::buffer);
  CHECK(Buffer::mapped_bytes() - mapped0 == 2 * 65536 + 131072 + 262144 + 524288 + 1048576);
  // A gradient keeps its own block: set_grad_view frees it.
  ps.add_weight("w", Shape{4});
  CHECK(ps.bytes(ParamKind::grad) == 16);
  float outside[4] = {};
  ps.set_grad_view("w", outside);
  CHECK(ps.bytes(ParamKind::grad) == 0);
}
TEST_CASE("Rng is deterministic, forks independently, draws in range") {
  Rng a(7), b(7), c(8);
  for (int i = 0; i < 100; ++i) CHECK(a.next_u64() == b.next_u64());
  CHECK(Rng(7).next_u64() != c.next_u64());
  CHECK(Rng(7).fork(3).next_u64() == Rng(7).fork(3).next_u64());
  CHECK(Rng(7).fork(3).next_u64() != Rng(7).fork(4).next_u64());
  Rng r(1);
  double mean = 0, var = 0;
  std::vector<int> hist(7, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    float u = r.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    hist[r.uniform_int(7)]++;
    float z = r.normal();
    mean += z;
    var += double(z) * z;
  }
  mean /= n;
  var = var / n - mean * mean;
  CHECK(std::abs(mean) < 0.05);
  CHECK(std::abs(var - 1.0) < 0.05);
  for (int h : hist) CHECK(std::abs(h - n / 7.0) < 0.1 * n / 7.0);
}

TEST_CASE("bf16: stochastic rounding picks a neighbour and is exact on average, nearest rounds ties to even") {
  // Over all 2^16 random inputs, rounding up happens for exactly the dropped fraction,
  // so the average of the results is the f32 value itself.
  for (float x : {1.0f + 3.0f / 1024.0f, -0.3f, 1e-20f, 123456.7f, 0.999f}) {
    CAPTURE(x);
    const uint32_t bits = std::bit_cast<uint32_t>(x);
    const float down = bf16_to_f32(uint16_t(bits >> 16)), up = bf16_to_f32(uint16_t((bits >> 16) + 1));
    double sum = 0;
    int ups = 0;
    for (uint32_t r = 0; r < 65536; ++r) {
      const float y = bf16_to_f32(f32_to_bf16_stochastic(x, uint16_t(r)));
      REQUIRE((y == down || y == up));
      ups += y == up;
      sum += y;
    }
    CHECK(ups == int(bits & 0xffffu));
    CHECK(sum / 65536.0 == Approx(double(x)).epsilon(1e-12));
  }
  // A value bf16 holds exactly is kept, whatever the draw.
  for (uint32_t r : {0u, 1u, 65535u}) CHECK(bf16_to_f32(f32_to_bf16_stochastic(-2.5f, uint16_t(r))) == -2.5f);
  CHECK(std::isinf(bf16_to_f32(f32_to_bf16_stochastic(INFINITY, 65535))));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16_stochastic(NAN, 0))));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16_nearest(NAN))));
  CHECK(f32_to_bf16_nearest(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie: to even
  CHECK(f32_to_bf16_nearest(std::bit_cast<float>(0x3f818000u)) == 0x3f82);  // tie: to even
  CHECK(f32_to_bf16_nearest(std::bit_cast<float>(0x3f808001u)) == 0x3f81);
  // The draws: a pure function of (key, step, index), spread over all 16 bits.
  CHECK(random_bits16(1, 2, 3) == random_bits16(1, 2, 3));
  int distinct_low = 0, high = 0;
  for (uint64_t i = 0; i < 4096; ++i) {
    const uint16_t r = random_bits16(7, 1, i);
    distinct_low += (r & 1) != (random_bits16(7, 2, i) & 1);
    high += r >= 32768;
  }
  CHECK(std::abs(distinct_low - 2048) < 200);
  CHECK(std::abs(high - 2048) < 200);
}

TEST_CASE("parallel_for covers the range once, with chunks independent of the thread count") {
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    std::vector<std::atomic<int>> seen(1001);
    std::atomic<int> chunks{0};
    parallel_for(0, 1001, 64, [&](int64_t lo, int64_t hi) {
      CHECK(lo % 64 == 0);
      CHECK(hi - lo <= 64);
      chunks++;
      for (int64_t i = lo; i < hi; ++i) seen[i]++;
    });
    for (auto& s : seen) CHECK(s == 1);
    CHECK(chunks == 16);
  }
  CHECK_THROWS_WITH(set_num_threads(0), Catch::Contains("at least 1"));
  set_num_threads(2);
}

TEST_CASE("ISA detection and override") {
  Isa best = detected_isa();
  CHECK(isa_available(best));
  CHECK(isa_available(Isa::reference));
  set_isa(Isa::reference);
  CHECK(active_isa() == Isa::reference);
  // Forcing what the build or CPU lacks gives the detected ISA, never a missing kernel.
  for (Isa isa : kAllIsas) {
    set_isa(isa);
    CHECK(active_isa() == (isa_available(isa) ? isa : best));
  }
  // An aarch64 build always has NEON; a portable build has no fast kernels at all.
#if ONNAS_PORTABLE_BUILD
  CHECK(best == Isa::reference);
#elif defined(__aarch64__)
  CHECK(best == Isa::neon);
#endif
  CHECK(!(isa_available(Isa::neon) && isa_available(Isa::avx2)));
  set_isa(best);
}
