// The shapes the search really produces, in one table (STYLE.md, habit 9).
//
// Default Fashion-MNIST search: 28x28x1 input, C = 16, 4 cells (reductions at 1 and
// 3), batch 32; the paper's Omniglot-like setting: C = 28, batch 25. Stem: 3x3 conv to
// 3C channels. Per cell: 1x1 preprocessing convs, depthwise 3x3 (dilation 1 and 2),
// pointwise C -> C, the 1x5 / 5x1 pair, the dense 3x3, at 28x28 (cell 0), 14x14 (cells 1-2, 2C
// channels) and 7x7 (cell 3, 4C channels).
#pragma once

#include <cstdint>
#include <vector>

namespace onnas::bench {

struct ConvCase {
  const char* name;
  int64_t N, C, H, W, K, R, S, stride, pad_h, pad_w, dil, groups;
};

inline std::vector<ConvCase> search_conv_cases() {
  return {
      // name                        N   C   H   W   K   R  S  st ph pw dil groups
      {"stem_3x3_1to48_28",          32, 1, 28, 28, 48, 3, 3, 1, 1, 1, 1, 1},
      {"pre_1x1_48to16_28",          32, 48, 28, 28, 16, 1, 1, 1, 0, 0, 1, 1},
      {"pw_1x1_16_28",               32, 16, 28, 28, 16, 1, 1, 1, 0, 0, 1, 1},
      {"dw_3x3_16_28",               32, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 16},
      {"dw_3x3_d2_16_28",            32, 16, 28, 28, 16, 3, 3, 1, 2, 2, 2, 16},
      {"conv_1x5_16_28",             32, 16, 28, 28, 16, 1, 5, 1, 0, 2, 1, 1},
      {"conv_5x1_16_28",             32, 16, 28, 28, 16, 5, 1, 1, 2, 0, 1, 1},
      {"conv_3x3_16_28",             32, 16, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1},
      {"conv_3x3_64_7",              32, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1},
      {"dw_3x3_s2_32_28to14",        32, 32, 28, 28, 32, 3, 3, 2, 1, 1, 1, 32},
      {"pw_1x1_32_14",               32, 32, 14, 14, 32, 1, 1, 1, 0, 0, 1, 1},
      {"dw_3x3_32_14",               32, 32, 14, 14, 32, 3, 3, 1, 1, 1, 1, 32},
      {"conv_1x5_32_14",             32, 32, 14, 14, 32, 1, 5, 1, 0, 2, 1, 1},
      {"pre_1x1_96to32_14",          32, 96, 14, 14, 32, 1, 1, 1, 0, 0, 1, 1},
      {"dw_3x3_s2_64_14to7",         32, 64, 14, 14, 64, 3, 3, 2, 1, 1, 1, 64},
      {"pw_1x1_64_7",                32, 64, 7, 7, 64, 1, 1, 1, 0, 0, 1, 1},
      {"dw_3x3_64_7",                32, 64, 7, 7, 64, 3, 3, 1, 1, 1, 1, 64},
      {"omniglot_pw_1x1_28_28",      25, 28, 28, 28, 28, 1, 1, 1, 0, 0, 1, 1},
      {"omniglot_dw_3x3_56_14",      25, 56, 14, 14, 56, 3, 3, 1, 1, 1, 1, 56},
      {"omniglot_pw_1x1_112_7",      25, 112, 7, 7, 112, 1, 1, 1, 0, 0, 1, 1},
  };
}

// GEMM shapes (M x N x K) that the dense convolutions above produce per image when
// lowered to im2col + SGEMM: M = K_out, N = P*Q, K = C*R*S.
struct GemmCase {
  const char* name;
  int64_t M, N, K;
};

inline std::vector<GemmCase> search_gemm_cases() {
  return {
      {"stem_48x784x9", 48, 784, 9},       {"pre_16x784x48", 16, 784, 48}, {"pw_16x784x16", 16, 784, 16},
      {"c1x5_16x784x80", 16, 784, 80},     {"pw_32x196x32", 32, 196, 32},  {"c1x5_32x196x160", 32, 196, 160},
      {"pre_32x196x96", 32, 196, 96},      {"pw_64x49x64", 64, 49, 64},    {"omni_pw_112x49x112", 112, 49, 112},
      {"linear_32x10x64", 32, 10, 64},
  };
}

}  // namespace onnas::bench
