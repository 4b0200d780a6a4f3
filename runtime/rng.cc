#include "runtime/rng.h"

#include <cmath>

namespace onnas {
namespace {

uint64_t splitmix64(uint64_t& x) { return mix64(x += 0x9e3779b97f4a7c15ull); }

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) : seed_(seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }

double Rng::uniform_double() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

int64_t Rng::uniform_int(int64_t n) {
  if (n <= 1) return 0;
  uint64_t un = uint64_t(n);
  uint64_t limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t r;
  do r = next_u64();
  while (r >= limit);
  return int64_t(r % un);
}

float Rng::normal() {
  double u1 = uniform_double(), u2 = uniform_double();
  if (u1 < 1e-300) u1 = 1e-300;
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

Rng Rng::fork(uint64_t stream) const {
  uint64_t x = seed_ ^ (0xd1b54a32d192ed03ull * (stream + 1));
  return Rng(splitmix64(x));
}

}  // namespace onnas
