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

#include <cstdint>

namespace onnas {

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
