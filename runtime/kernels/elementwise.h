// Elementwise and data-movement kernels over flat float arrays (n elements), and
// channel concat / split / spatial crop for NCHW. Outputs are overwritten unless the
// name says accumulate. Reductions (dot, sum) use fixed chunks and combine them in
// order, in double, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>

namespace onnas::kernels {

void relu_forward(int64_t n, const float* x, float* y);
// dx = dy where x > 0 else 0 (x may be the relu's output: same mask).
void relu_backward(int64_t n, const float* x, const float* dy, float* dx);

void add(int64_t n, const float* a, const float* b, float* y);          // y = a + b
void accumulate(int64_t n, const float* x, float* y);                   // y += x
void scale(int64_t n, float s, const float* x, float* y);               // y = s * x
void axpy(int64_t n, float a, const float* x, float* y);                // y += a * x
void fill(int64_t n, float v, float* y);
double dot(int64_t n, const float* a, const float* b);                  // sum a*b
double sum(int64_t n, const float* x);

// Channel concat: inputs[i] is [N, channels[i], HW]; y is [N, sum(channels), HW].
void concat_channels(int64_t N, int64_t HW, std::span<const int64_t> channels, std::span<const float* const> inputs,
                     float* y);
// The inverse: copies the channel slices of x into outputs[i].
void split_channels(int64_t N, int64_t HW, std::span<const int64_t> channels, const float* x,
                    std::span<float* const> outputs);
// Channel slice [c0, c0 + Cs) of x[N, C, HW] into y[N, Cs, HW]; and its adjoint, which
// writes dy into the slice of dx[N, C, HW] and zeros the rest.
void slice_channels(int64_t N, int64_t C, int64_t HW, int64_t c0, int64_t Cs, const float* x, float* y);
void slice_channels_backward(int64_t N, int64_t C, int64_t HW, int64_t c0, int64_t Cs, const float* dy, float* dx);

// y[N,C,OH,OW] = x[N,C,top:top+OH, left:left+OW]; backward zero-pads dy back into dx.
void crop2d(int64_t N, int64_t C, int64_t H, int64_t W, int64_t top, int64_t left, int64_t OH, int64_t OW,
            const float* x, float* y);
void crop2d_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t top, int64_t left, int64_t OH, int64_t OW,
                     const float* dy, float* dx);

}  // namespace onnas::kernels
