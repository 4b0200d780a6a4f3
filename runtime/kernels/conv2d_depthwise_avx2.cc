// Depthwise convolution loops compiled with -mavx2 -mfma (see conv2d_depthwise_impl.h).
#define ONNAS_DW_ISA avx2
#include "runtime/kernels/conv2d_depthwise_impl.h"
