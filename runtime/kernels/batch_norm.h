// Batch normalization over N, H, W for each channel C, NCHW.
//
// Training: batch statistics. mean[C] and rstd[C] = 1/sqrt(var + eps) (biased var)
// are explicit outputs, kept for the backward. Running statistics, when given, are
// updated like PyTorch: running = (1 - momentum) * running + momentum * batch, with
// the unbiased variance for running_var. gamma/beta null means affine = false.
// Inference: running statistics. Reductions sum in chunks fixed by the shape, so the
// result does not depend on the thread count.
//
// Dimension key: N batch, C channels, HW = H*W.
#pragma once

#include <cstdint>

namespace onnas::kernels {

struct BatchNormShape {
  int64_t N = 1, C = 1, HW = 1;
  float eps = 1e-5f;
  float momentum = 0.1f;
  bool operator==(const BatchNormShape&) const = default;
};

void batch_norm_forward_train(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                              float* y, float* mean, float* rstd, float* running_mean, float* running_var);
void batch_norm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float* y);
// dx overwritten; dgamma / dbeta (may be null) overwritten.
void batch_norm_backward(const BatchNormShape& s, const float* x, const float* dy, const float* gamma,
                         const float* mean, const float* rstd, float* dx, float* dgamma, float* dbeta);
// The same dx for a non-affine batch norm from its output: y is xhat itself, so
// dx = rstd * (dy - mean(dy) - y * mean(dy * y)) needs neither x nor the mean (the
// input can die after the forward). dx may be dy (in place).
void batch_norm_backward_from_output(const BatchNormShape& s, const float* y, const float* dy, const float* rstd,
                                     float* dx);

}  // namespace onnas::kernels
