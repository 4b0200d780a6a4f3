// Depthwise convolution loops compiled with AVX-512 flags (see conv2d_depthwise_impl.h).
#define ONNAS_DW_ISA avx512
#include "runtime/kernels/conv2d_depthwise_impl.h"
