// Rng: the one seeded random generator every random choice goes through.
// xoshiro256** seeded by splitmix64; its own uniform / normal / integer draws, so a
// seed gives the same stream on every platform and standard library.
//
//   Rng rng(42);
//   float u = rng.uniform();          // [0, 1)
//   int k = rng.uniform_int(7);       // 0..6
//   float z = rng.normal();           // mean 0, std 1
//   Rng child = rng.fork(task_index); // an independent stream, a function of (seed, index)
#pragma once

#include <cstddef>
#include <cstdint>

namespace onnas {

// splitmix64's output function: a bijective mix of all 64 bits. A counter-based draw
// is mix64 of (key, counters) combined linearly: no generator state.
constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// FNV-1a over bytes (continue a hash by passing it as `h`): a stable key from a name,
// the same on every platform (std::hash is not).
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);

  uint64_t next_u64();
  float uniform();                      // [0, 1)
  double uniform_double();              // [0, 1)
  int64_t uniform_int(int64_t n);       // [0, n), unbiased
  float normal();                       // Box-Muller, mean 0, std 1
  Rng fork(uint64_t stream) const;      // deterministic child stream
  uint64_t seed() const { return seed_; }

 private:
  uint64_t s_[4];
  uint64_t seed_;
};

}  // namespace onnas
