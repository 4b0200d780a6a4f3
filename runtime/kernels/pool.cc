// Max / average / global average pooling, NCHW. Every (n, c) plane is independent, so
// all kernels are parallel over the N*C planes; backward kernels scatter within their
// own plane only, in a fixed order, so results do not depend on the thread count.
//
// Dimension key: N batch, C channels, H W input, R S window, P Q output; stride and
// pad per axis; HW = H*W.
#include "runtime/kernels/pool.h"

#include <cstring>

#include "runtime/error.h"
#include "runtime/threading.h"

namespace onnas::kernels {
namespace {

// Planes per parallel chunk: about 8K floats of input each.
int64_t plane_grain(int64_t plane_floats) { return plane_floats >= 8192 ? 1 : 8192 / (plane_floats > 0 ? plane_floats : 1); }

// The in-bounds part [lo, hi) of the window starting at `start` (may be negative).
struct Span {
  int64_t lo, hi;
};
Span clamp_window(int64_t start, int64_t size, int64_t limit) {
  return {start < 0 ? 0 : start, start + size > limit ? limit : start + size};
}

void check_pool(const Pool2dShape& s, const char* op) {
  ONNAS_CHECK(s.pad_h * 2 <= s.R && s.pad_w * 2 <= s.S && s.P() > 0 && s.Q() > 0,
              "{}: window {}x{} with pad {}x{} on {}x{} input leaves an empty window", op, s.R, s.S, s.pad_h, s.pad_w,
              s.H, s.W);
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  check_pool(s, "max_pool2d");
  const int64_t P = s.P(), Q = s.Q();
  parallel_for(0, s.N * s.C, plane_grain(s.H * s.W), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const float* xp = x + nc * s.H * s.W;
      for (int64_t p = 0; p < P; ++p) {
        const Span hs = clamp_window(p * s.stride_h - s.pad_h, s.R, s.H);
        for (int64_t q = 0; q < Q; ++q) {
          const Span ws = clamp_window(q * s.stride_w - s.pad_w, s.S, s.W);
          // Only in-bounds positions compete (padding never wins); strict > keeps the
          // first maximum in row-major window order, as PyTorch does.
          int64_t best_at = hs.lo * s.W + ws.lo;
          float best = xp[best_at];
          for (int64_t h = hs.lo; h < hs.hi; ++h)
            for (int64_t v = ws.lo; v < ws.hi; ++v)
              if (xp[h * s.W + v] > best) best = xp[h * s.W + v], best_at = h * s.W + v;
          y[(nc * P + p) * Q + q] = best;
          argmax[(nc * P + p) * Q + q] = int32_t(best_at);
        }
      }
    }
  });
}

void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t PQ = s.P() * s.Q(), HW = s.H * s.W;
  parallel_for(0, s.N * s.C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      float* dxp = dx + nc * HW;
      std::memset(dxp, 0, size_t(HW) * sizeof(float));
      const int32_t* am = argmax + nc * PQ;
      const float* dyp = dy + nc * PQ;
      for (int64_t i = 0; i < PQ; ++i) dxp[am[i]] += dyp[i];
    }
  });
}

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  check_pool(s, "avg_pool2d");
  const int64_t P = s.P(), Q = s.Q();
  parallel_for(0, s.N * s.C, plane_grain(s.H * s.W), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const float* xp = x + nc * s.H * s.W;
      for (int64_t p = 0; p < P; ++p) {
        const Span hs = clamp_window(p * s.stride_h - s.pad_h, s.R, s.H);
        for (int64_t q = 0; q < Q; ++q) {
          const Span ws = clamp_window(q * s.stride_w - s.pad_w, s.S, s.W);
          float acc = 0.0f;
          for (int64_t h = hs.lo; h < hs.hi; ++h)
            for (int64_t v = ws.lo; v < ws.hi; ++v) acc += xp[h * s.W + v];
          // count_include_pad = False: divide by the in-bounds count.
          y[(nc * P + p) * Q + q] = acc / float((hs.hi - hs.lo) * (ws.hi - ws.lo));
        }
      }
    }
  });
}

void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx) {
  check_pool(s, "avg_pool2d");
  const int64_t P = s.P(), Q = s.Q(), HW = s.H * s.W;
  parallel_for(0, s.N * s.C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      float* dxp = dx + nc * HW;
      std::memset(dxp, 0, size_t(HW) * sizeof(float));
      for (int64_t p = 0; p < P; ++p) {
        const Span hs = clamp_window(p * s.stride_h - s.pad_h, s.R, s.H);
        for (int64_t q = 0; q < Q; ++q) {
          const Span ws = clamp_window(q * s.stride_w - s.pad_w, s.S, s.W);
          const float g = dy[(nc * P + p) * Q + q] / float((hs.hi - hs.lo) * (ws.hi - ws.lo));
          for (int64_t h = hs.lo; h < hs.hi; ++h)
            for (int64_t v = ws.lo; v < ws.hi; ++v) dxp[h * s.W + v] += g;
        }
      }
    }
  });
}

void global_avg_pool_forward(int64_t N, int64_t C, int64_t HW, const float* x, float* y) {
  parallel_for(0, N * C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      // 16 float lanes (the compiler vectorizes them without reassociating), then double.
      constexpr int kLanes = 16;
      float lane[kLanes] = {};
      const float* xp = x + nc * HW;
      int64_t i = 0;
      for (; i + kLanes <= HW; i += kLanes)
        for (int j = 0; j < kLanes; ++j) lane[j] += xp[i + j];
      double acc = 0.0;
      for (int j = 0; j < kLanes; ++j) acc += double(lane[j]);
      for (; i < HW; ++i) acc += double(xp[i]);
      y[nc] = float(acc / double(HW));
    }
  });
}

void global_avg_pool_backward(int64_t N, int64_t C, int64_t HW, const float* dy, float* dx) {
  parallel_for(0, N * C, plane_grain(HW), [&](int64_t lo, int64_t hi) {
    for (int64_t nc = lo; nc < hi; ++nc) {
      const float g = dy[nc] / float(HW);
      float* dxp = dx + nc * HW;
      for (int64_t i = 0; i < HW; ++i) dxp[i] = g;
    }
  });
}

}  // namespace onnas::kernels
