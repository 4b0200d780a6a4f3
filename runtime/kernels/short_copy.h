// Copies of short rows of floats (an image row: 7 to a few hundred) without a call.
//
// A plain element loop is turned by the compiler into a call to memmove, which for a
// 28-float row costs about as much as the row's arithmetic: in the depthwise loops and
// the convolutions' padded bands, a call per row was half the time of a depthwise
// forward. Here a short row is a few fixed-size memcpys (16, 8 or 4 floats), which
// compilers inline as vector moves; a length that is not a multiple ends with one
// overlapping copy. Source and destination must not overlap.
//
// Internal linkage (an unnamed namespace): files compiled for other ISAs may include it
// without their copies meeting at link time (conv2d_depthwise_impl.h).
#pragma once

#include <cstdint>
#include <cstring>

namespace onnas::kernels {
namespace {

// Rows longer than kShortRow floats take one memcpy call, cheap next to their length.
// Shorter ones are copied without a loop: a loop of fixed-size copies would be turned
// back into a call.
constexpr int64_t kShortRow = 64;

inline void copy_floats(float* __restrict d, const float* __restrict s, int64_t n) {
  constexpr size_t k16 = 16 * sizeof(float), k8 = 8 * sizeof(float), k4 = 4 * sizeof(float);
  if (n > kShortRow) {
    std::memcpy(d, s, size_t(n) * sizeof(float));
  } else if (n >= 16) {
    std::memcpy(d, s, k16);
    if (n >= 32) std::memcpy(d + 16, s + 16, k16);
    if (n >= 48) std::memcpy(d + 32, s + 32, k16);
    std::memcpy(d + n - 16, s + n - 16, k16);  // the rest, overlapping what is done
  } else if (n >= 8) {
    std::memcpy(d, s, k8);
    std::memcpy(d + n - 8, s + n - 8, k8);
  } else if (n >= 4) {
    std::memcpy(d, s, k4);
    std::memcpy(d + n - 4, s + n - 4, k4);
  } else {
    if (n > 0) d[0] = s[0];
    if (n > 1) d[1] = s[1];
    if (n > 2) d[2] = s[2];
  }
}

inline void zero_floats(float* d, int64_t n) {
  constexpr size_t k16 = 16 * sizeof(float), k8 = 8 * sizeof(float), k4 = 4 * sizeof(float);
  if (n > kShortRow) {
    std::memset(d, 0, size_t(n) * sizeof(float));
  } else if (n >= 16) {
    std::memset(d, 0, k16);
    if (n >= 32) std::memset(d + 16, 0, k16);
    if (n >= 48) std::memset(d + 32, 0, k16);
    std::memset(d + n - 16, 0, k16);
  } else if (n >= 8) {
    std::memset(d, 0, k8);
    std::memset(d + n - 8, 0, k8);
  } else if (n >= 4) {
    std::memset(d, 0, k4);
    std::memset(d + n - 4, 0, k4);
  } else {
    if (n > 0) d[0] = 0.0f;
    if (n > 1) d[1] = 0.0f;
    if (n > 2) d[2] = 0.0f;
  }
}

}  // namespace
}  // namespace onnas::kernels
