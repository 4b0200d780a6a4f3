// bfloat16: the upper 16 bits of an IEEE f32 (sign, 8 exponent bits, 7 mantissa bits),
// so f32's whole range at about 2-3 significant digits. Conversions only: nothing
// computes in bf16, values are widened to f32, updated, and narrowed back.
//
// Narrowing rounds stochastically: adding 16 uniform random bits below the kept half
// and truncating rounds up with probability equal to the dropped fraction, so the
// stored value is exact in expectation. An average that moves by less than half a
// bf16 step per update (Adam's second moment, beta2 = 0.999, moves by 0.1% a step;
// a bf16 step is 0.4-0.8%) would never move under round-to-nearest; rounded
// stochastically it follows the f32 average with a small zero-mean noise.
//
//   uint16_t h = f32_to_bf16_stochastic(v, random_bits16(key, step, i));
//   float v2 = bf16_to_f32(h);                  // v2 is v rounded down or up
#pragma once

#include <bit>
#include <cstdint>

#include "runtime/rng.h"

namespace onnas {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

// Round to nearest, ties to even (NaN stays a quiet NaN).
inline uint16_t f32_to_bf16_nearest(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Rounds down or up (in magnitude) with probabilities that make the result exact in
// expectation; `random` is 16 uniform bits. Infinities and NaN keep their class; a
// finite value just below the largest bf16 may round to infinity, as the next step up.
inline uint16_t f32_to_bf16_stochastic(float x, uint16_t random) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return uint16_t((u >> 16) | ((u & 0xffffu) ? 0x40u : 0u));
  return uint16_t((u + random) >> 16);
}

// 16 random bits as a pure function of (key, step, index): a counter-based draw
// (runtime/rng.h's mix64 over the three), so a parallel loop needs no generator state,
// any split of the loop gives the same bits, and a resumed run draws what the
// uninterrupted one would have.
inline uint16_t random_bits16(uint64_t key, uint64_t step, uint64_t index) {
  return uint16_t(mix64(key + step * 0x9e3779b97f4a7c15ull + index * 0xd1b54a32d192ed03ull) >> 48);
}

}  // namespace onnas
