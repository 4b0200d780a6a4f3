// Depthwise convolution loops compiled for aarch64 with NEON (see conv2d_depthwise_impl.h).
#define ONNAS_DW_ISA neon
#include "runtime/kernels/conv2d_depthwise_impl.h"
