// Dense convolution as im2col + SGEMM, one image at a time; depthwise goes to the
// direct loops (conv2d_depthwise.cc); other group counts run the reference.
//
// Dimension key: N batch, C input channels, H W input, K output channels, R S kernel,
// P Q output; CRS = C*R*S rows and PQ = P*Q columns of the im2col matrix.
//
//   forward          y[n]  (K x PQ)   = w (K x CRS) * cols(x[n]) (CRS x PQ)
//   backward data    cols (CRS x PQ)  = w^T * dy[n];  dx[n] = col2im(cols)
//   backward weight  dw   (K x CRS)  += dy[n] * cols(x[n])^T, per lane in order
// each a tile of output rows at a time (the PQ columns of a tile), so the columns
// never hold a whole image.
//
// A pointwise conv (1x1, stride 1, no pad) is already a GEMM on the input (cols = x[n])
// and needs no columns. Nor does any other dense conv with stride 1 along a row: each
// lane copies a band of input rows once, zero-padded, and the GEMM reads every row of
// the columns where it lies in the band through a table of row pointers
// (sgemm_indirect), an output row at a time: the copy is the input's size, not R*S
// times it, and the products are the same FMA chains as on copied columns. Backward
// data with stride 1 is the forward conv of dy with the kernel flipped and transposed
// (pad (R-1)*dil - pad), so it takes the same path; the weight gradient gathers its
// packed panels of the columns from the band (sgemm_gathered). Strided rows keep the
// columns. The im2col buffers are the caller's planned workspace, so the
// kernels never allocate. Images run in a fixed number of lanes (below) in parallel,
// and SGEMM and im2col split further inside a lane; the weight gradient sums each
// lane's images in order, then the lanes in order, and SGEMM's own sums do not depend
// on the thread count, so neither does dw.
#include "runtime/kernels/conv2d.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"
#include "runtime/kernels/conv2d_depthwise_impl.h"
#include "runtime/kernels/elementwise.h"
#include "runtime/kernels/reference.h"
#include "runtime/kernels/short_copy.h"
#include "runtime/kernels/sgemm.h"
#include "runtime/threading.h"

namespace onnas::kernels {
namespace {

bool pointwise(const Conv2dShape& s) {
  return s.groups == 1 && s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 &&
         s.pad_w == 0;
}

void check_shape(const Conv2dShape& s) {
  ONNAS_CHECK(s.N > 0 && s.C > 0 && s.K > 0 && s.groups > 0 && s.C % s.groups == 0 && s.K % s.groups == 0,
              "conv2d: bad channels/groups (C {}, K {}, groups {})", s.C, s.K, s.groups);
  ONNAS_CHECK(s.P() > 0 && s.Q() > 0, "conv2d: empty output for input {}x{}, kernel {}x{}", s.H, s.W, s.R, s.S);
}

// Floor of a / b for b > 0 and any sign of a (C++ division truncates toward zero).
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output columns q with 0 <= q*sw - pw + t*dw < W, i.e. the in-bounds part of a row.
struct ColRange {
  int64_t lo, hi;
};

ColRange valid_cols(const Conv2dShape& s, int64_t Q, int64_t t) {
  const int64_t off = t * s.dil_w - s.pad_w;  // v = q*sw + off
  int64_t lo = -floor_div(off, s.stride_w);   // ceil(-off / sw)
  int64_t hi = floor_div(s.W - 1 - off, s.stride_w) + 1;
  if (lo < 0) lo = 0;
  if (hi > Q) hi = Q;
  if (hi < lo) hi = lo;
  return {lo, hi};
}

// Rows per parallel chunk of im2col / col2im: about 4K floats of columns each.
int64_t row_grain(int64_t PQ) { return PQ >= 4096 ? 1 : 4096 / PQ; }

// The columns of output rows [p0, p1) (a tile):
// cols[(c*R + r)*S + t][(p - p0)*Q + q] = x[c, p*sh - ph + r*dh, q*sw - pw + t*dw], 0 in padding.
void im2col(const Conv2dShape& s, const float* x, float* cols, int64_t p0, int64_t p1) {
  const int64_t Q = s.Q(), RS = s.R * s.S, TQ = (p1 - p0) * Q;
  parallel_for(0, s.C * RS, row_grain(TQ), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t c = row / RS, r = (row / s.S) % s.R, t = row % s.S;
      const ColRange cr = valid_cols(s, Q, t);
      const int64_t off = t * s.dil_w - s.pad_w;
      float* out = cols + row * TQ;
      for (int64_t p = p0; p < p1; ++p) {
        float* o = out + (p - p0) * Q;
        const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
        if (h < 0 || h >= s.H) {
          zero_floats(o, Q);
          continue;
        }
        const float* xr = x + (c * s.H + h) * s.W + off;
        for (int64_t q = 0; q < cr.lo; ++q) o[q] = 0.0f;
        if (s.stride_w == 1) {
          copy_floats(o + cr.lo, xr + cr.lo, cr.hi - cr.lo);
        } else {
          for (int64_t q = cr.lo; q < cr.hi; ++q) o[q] = xr[q * s.stride_w];
        }
        for (int64_t q = cr.hi; q < Q; ++q) o[q] = 0.0f;
      }
    }
  });
}

// dx[c, h, v] += the column entries im2col took from (c, h, v), for the tile of output
// rows [p0, p1); the first tile (p0 == 0) overwrites. Parallel over channels: each
// channel's plane is written by one task, its rows added in order.
void col2im(const Conv2dShape& s, const float* cols, float* dx, int64_t p0, int64_t p1) {
  const int64_t Q = s.Q(), RS = s.R * s.S, HW = s.H * s.W, TQ = (p1 - p0) * Q;
  const int64_t grain = HW * RS >= 4096 ? 1 : 4096 / (HW * RS);
  parallel_for(0, s.C, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      float* plane = dx + c * HW;
      if (p0 == 0) std::memset(plane, 0, size_t(HW) * sizeof(float));
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) {
          const ColRange cr = valid_cols(s, Q, t);
          const int64_t off = t * s.dil_w - s.pad_w;
          const float* in = cols + ((c * s.R + r) * s.S + t) * TQ;
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
            if (h < 0 || h >= s.H) continue;
            float* __restrict xr = plane + h * s.W + off;
            const float* __restrict ir = in + (p - p0) * Q;
            if (s.stride_w == 1) {
              for (int64_t q = cr.lo; q < cr.hi; ++q) xr[q] += ir[q];
            } else {
              for (int64_t q = cr.lo; q < cr.hi; ++q) xr[q * s.stride_w] += ir[q];
            }
          }
        }
    }
  });
}

// Images run in kLanes lanes: lane l takes images l, l + L, l + 2L, ... in order, with
// its own columns, its own SGEMM packing memory (and, for the weight gradient, its own
// partial sum), all in the planned workspace. Lanes run in parallel and each runs its
// SGEMMs on its own thread (sgemm_serial), so no lane waits inside another's work
// and nothing is allocated. With one image, the single lane calls the parallel sgemm.
// The lane count is a constant, not the thread count, so the workspace is planned
// once and the weight gradient's partial sums (added in lane order) do not depend on
// the threads.
constexpr int64_t kLanes = 4;
int64_t lanes(const Conv2dShape& s) { return std::min(kLanes, s.N); }
size_t round_floats(size_t n) { return (n + 15) / 16 * 16; }  // 64-byte multiples
// The columns are made a tile of output rows at a time, about kTileColumns output
// pixels each (at least one row): the columns of a whole image would be CRS x PQ, as
// large as the input times R*S. GEMM blocks its reduction by 256 anyway, so tiles
// cost little speed.
constexpr int64_t kTileColumns = 256;
int64_t tile_rows(const Conv2dShape& s) { return std::clamp<int64_t>(kTileColumns / s.Q(), 1, s.P()); }
size_t cols_floats(const Conv2dShape& s) {
  return pointwise(s) ? 0 : round_floats(size_t(s.C * s.R * s.S) * size_t(tile_rows(s) * s.Q()));
}

// The GEMM of each direction: C (M x N) = op(A) op(B) over Kd (the largest tile's).
struct Gemm {
  bool trans_b;
  int64_t M, N, Kd;
};
Gemm gemm_of(const Conv2dShape& s, ConvPass pass) {
  const int64_t CRS = s.C * s.R * s.S, PQ = pointwise(s) ? s.P() * s.Q() : tile_rows(s) * s.Q();
  switch (pass) {
    case ConvPass::forward: return {false, s.K, PQ, CRS};
    case ConvPass::backward_data: return {false, CRS, PQ, s.K};
    case ConvPass::backward_weight: return {true, s.K, CRS, PQ};
  }
  return {};
}
size_t pack_floats(const Conv2dShape& s, ConvPass pass) {
  const Gemm g = gemm_of(s, pass);
  return round_floats(sgemm_pack_floats(g.trans_b, g.M, g.N, g.Kd));
}
size_t lane_floats(const Conv2dShape& s, ConvPass pass) { return cols_floats(s) + pack_floats(s, pass); }

// Workspace layout: per lane its columns and packing memory, then the partial sums
// of lanes 1..L-1 (weight gradient).
float* lane_cols(const Conv2dShape& s, ConvPass pass, void* workspace, int64_t lane) {
  return static_cast<float*>(workspace) + size_t(lane) * lane_floats(s, pass);
}
float* lane_pack(const Conv2dShape& s, ConvPass pass, void* workspace, int64_t lane) {
  return lane_cols(s, pass, workspace, lane) + cols_floats(s);
}
float* lane_dw(const Conv2dShape& s, void* workspace, int64_t lane) {
  return lane_cols(s, ConvPass::backward_weight, workspace, lanes(s)) +
         size_t(lane - 1) * round_floats(size_t(s.K * s.C * s.R * s.S));
}

// One product of a lane: on this thread with the lane's packing memory when lanes
// run in parallel, else the parallel sgemm packing into the (one) lane's memory.
void lane_gemm(const Conv2dShape& s, float* pack, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (lanes(s) >= 2)
    sgemm_serial(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, pack);
  else
    sgemm_packed(trans_a, trans_b, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, pack);
}

template <typename F>
void for_each_lane(const Conv2dShape& s, F&& body) {
  const int64_t L = lanes(s);
  parallel_for(0, L, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t lane = lo; lane < hi; ++lane) body(lane, L);
  });
}

// The indirect path (above): dense, not pointwise, stride 1 along a row, output rows of
// at least kIndirectMinRow pixels. Its products run an output row at a time, so on
// shorter rows (7x7 maps) most of each register tile's columns would be empty; there the
// columns of several rows make wider products (measured: a 3x3 conv on 64 channels of
// 7x7 was 0.85-0.90x as fast on the indirect path).
constexpr int64_t kIndirectMinRow = 12;
bool indirect(const Conv2dShape& s) {
  return s.groups == 1 && !pointwise(s) && s.stride_w == 1 && s.Q() >= kIndirectMinRow;
}

// Backward data as a forward conv: of dy (K channels, P x Q) with the kernel flipped
// and transposed to C x K x R x S, padded so its output is H x W. Needs stride 1 and a
// padding no larger than the dilated kernel's reach. Its GEMM has C rows (the columns'
// has C*R*S): below a register tile's rows (8) most of each tile would be empty, and a
// stem's 1 or 3 input channels keep the columns.
constexpr int64_t kFlipMinChannels = 8;
bool flips(const Conv2dShape& s) {
  return s.groups == 1 && !pointwise(s) && s.stride_h == 1 && s.stride_w == 1 && s.pad_h <= (s.R - 1) * s.dil_h &&
         s.pad_w <= (s.S - 1) * s.dil_w && s.C >= kFlipMinChannels && s.W >= kIndirectMinRow;
}
Conv2dShape flipped(const Conv2dShape& s) {
  return {.N = s.N, .C = s.K, .H = s.P(), .W = s.Q(), .K = s.C, .R = s.R, .S = s.S,
          .pad_h = (s.R - 1) * s.dil_h - s.pad_h, .pad_w = (s.S - 1) * s.dil_w - s.pad_w, .dil_h = s.dil_h,
          .dil_w = s.dil_w};
}
// wf[c][k][R-1-r][S-1-t] = w[k][c][r][t].
void flip_weights(const Conv2dShape& s, const float* w, float* wf) {
  const int64_t RS = s.R * s.S;
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < RS; ++i) wf[(c * s.K + k) * RS + (RS - 1 - i)] = w[(k * s.C + c) * RS + i];
}

// A lane's band: the zero-padded input rows a tile of output rows reads, each padded row
// Wp = W + 2*pw wide. Tiles are balanced, about kBandColumns output pixels each.
constexpr int64_t kBandColumns = 1024;
struct Band {
  int64_t rows_out;  // output rows per tile (the last tile may have fewer)
  int64_t rows_in;   // input rows one tile reads
  int64_t Wp;
};
Band band_of(const Conv2dShape& s) {
  const int64_t P = s.P(), most = std::clamp<int64_t>(kBandColumns / s.Q(), 1, P);
  const int64_t tiles = (P + most - 1) / most, rows_out = (P + tiles - 1) / tiles;
  return {rows_out, (rows_out - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1, s.W + 2 * s.pad_w};
}
constexpr size_t kFloatsPerPointer = sizeof(const float*) / sizeof(float);
size_t band_floats(const Conv2dShape& s) {
  const Band b = band_of(s);
  return round_floats(size_t(s.C * b.rows_in * b.Wp));
}
size_t table_floats(const Conv2dShape& s) { return round_floats(size_t(s.C * s.R * s.S) * kFloatsPerPointer); }
// The packing memory of a lane's products: sgemm_indirect's (forward, backward data by
// the flipped kernel) or sgemm_gathered's (weight gradient, a tile's pixels deep).
size_t indirect_pack_floats(const Conv2dShape& s, ConvPass pass) {
  const int64_t CRS = s.C * s.R * s.S;
  if (pass == ConvPass::backward_weight)
    return round_floats(sgemm_gathered_pack_floats(s.K, CRS, band_of(s).rows_out * s.Q()));
  return round_floats(sgemm_indirect_pack_floats(s.K, CRS));
}
size_t indirect_lane_floats(const Conv2dShape& s, ConvPass pass) {
  return band_floats(s) + table_floats(s) + indirect_pack_floats(s, pass);
}

// A lane's piece of the workspace on the indirect path: the band, the table of the
// columns' rows (row (c, r, t) for the tile's first output row: where its values lie in
// the band, set once) and the packing memory.
struct BandLane {
  float* band;
  const float** rows;
  float* pack;
};
BandLane band_lane(const Conv2dShape& s, ConvPass pass, float* workspace, int64_t lane) {
  float* at = workspace + size_t(lane) * indirect_lane_floats(s, pass);
  BandLane b{at, reinterpret_cast<const float**>(at + band_floats(s)), at + band_floats(s) + table_floats(s)};
  const Band band = band_of(s);
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t t = 0; t < s.S; ++t)
        b.rows[(c * s.R + r) * s.S + t] = b.band + (c * band.rows_in + r * s.dil_h) * band.Wp + t * s.dil_w;
  return b;
}

// The band of output rows [p0, p1) of image xn: its input rows, zero-padded.
void fill_band(const Conv2dShape& s, const float* xn, float* out, int64_t p0, int64_t p1) {
  const Band band = band_of(s);
  const int64_t h0 = p0 * s.stride_h - s.pad_h, rows_in = (p1 - p0 - 1) * s.stride_h + (s.R - 1) * s.dil_h + 1;
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t i = 0; i < rows_in; ++i) {
      float* o = out + (c * band.rows_in + i) * band.Wp;
      const int64_t h = h0 + i;
      if (h < 0 || h >= s.H) {
        zero_floats(o, band.Wp);
        continue;
      }
      zero_floats(o, s.pad_w);
      copy_floats(o + s.pad_w, xn + (c * s.H + h) * s.W, s.W);
      zero_floats(o + s.pad_w + s.W, s.pad_w);
    }
}

// Runs body(lane, lanes, b, n, p0, p1) for every tile of output rows [p0, p1) of every
// image n, lanes in parallel, each lane's images in order, with the tile's band filled
// from x (b: the lane's band, row table and packing memory).
template <typename F>
void for_each_band_tile(const Conv2dShape& s, ConvPass pass, const float* x, float* workspace, F&& body) {
  const int64_t P = s.P(), rows = band_of(s).rows_out;
  for_each_lane(s, [&](int64_t lane, int64_t L) {
    const BandLane b = band_lane(s, pass, workspace, lane);
    for (int64_t n = lane; n < s.N; n += L)
      for (int64_t p0 = 0; p0 < P; p0 += rows) {
        const int64_t p1 = std::min(P, p0 + rows);
        fill_band(s, x + n * s.C * s.H * s.W, b.band, p0, p1);
        body(lane, L, b, n, p0, p1);
      }
  });
}

// y = conv(x, w) on the indirect path.
void indirect_forward(const Conv2dShape& s, const float* x, const float* w, float* y, float* workspace) {
  const int64_t Q = s.Q(), PQ = s.P() * Q, CRS = s.C * s.R * s.S, row_step = s.stride_h * band_of(s).Wp;
  for_each_band_tile(s, ConvPass::forward, x, workspace,
                     [&](int64_t, int64_t L, const BandLane& b, int64_t n, int64_t p0, int64_t p1) {
                       sgemm_indirect(s.K, Q, CRS, p1 - p0, 1.0f, w, CRS, b.rows, row_step, 0.0f,
                                      y + n * s.K * PQ + p0 * Q, PQ, Q, L < 2, b.pack);
                     });
}

// dw = sum over images and pixels of dy x columns^T on the indirect path: each lane sums
// its images in order into dw (lane 0) or its partial, then dw += partials in lane order.
void indirect_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* workspace) {
  const int64_t Q = s.Q(), PQ = s.P() * Q, CRS = s.C * s.R * s.S, row_step = s.stride_h * band_of(s).Wp;
  float* partials = workspace + size_t(lanes(s)) * indirect_lane_floats(s, ConvPass::backward_weight);
  auto partial = [&](int64_t lane) { return partials + size_t(lane - 1) * round_floats(size_t(s.K * CRS)); };
  for_each_band_tile(s, ConvPass::backward_weight, x, workspace,
                     [&](int64_t lane, int64_t L, const BandLane& b, int64_t n, int64_t p0, int64_t p1) {
                       const float beta = n == lane && p0 == 0 ? 0.0f : 1.0f;  // a lane's first tile overwrites
                       sgemm_gathered(s.K, CRS, (p1 - p0) * Q, 1.0f, dy + n * s.K * PQ + p0 * Q, PQ, b.rows, Q,
                                      row_step, beta, lane == 0 ? dw : partial(lane), CRS, L < 2, b.pack);
                     });
  for (int64_t lane = 1; lane < lanes(s); ++lane) accumulate(s.K * CRS, partial(lane), dw);
}

}  // namespace

size_t conv2d_workspace_bytes(const Conv2dShape& s, ConvPass pass) {
  if (s.groups != 1) return 0;
  const size_t partials =
      pass == ConvPass::backward_weight ? size_t(lanes(s) - 1) * round_floats(size_t(s.K * s.C * s.R * s.S)) : 0;
  if (pass == ConvPass::backward_data && flips(s))
    return (round_floats(size_t(s.weight_numel())) +
            size_t(lanes(s)) * indirect_lane_floats(flipped(s), ConvPass::forward)) *
           sizeof(float);
  if (pass != ConvPass::backward_data && indirect(s))
    return (size_t(lanes(s)) * indirect_lane_floats(s, pass) + partials) * sizeof(float);
  return (size_t(lanes(s)) * lane_floats(s, pass) + partials) * sizeof(float);
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, float* y, void* workspace) {
  check_shape(s);
  if (s.depthwise()) return depthwise::run_forward(s, x, w, y);
  if (s.groups != 1) return ref::conv2d_forward<float>(s, x, w, y);
  if (indirect(s)) return indirect_forward(s, x, w, y, static_cast<float*>(workspace));
  const int64_t HW = s.H * s.W, P = s.P(), Q = s.Q(), PQ = P * Q, CRS = s.C * s.R * s.S, rows = tile_rows(s);
  for_each_lane(s, [&](int64_t lane, int64_t L) {
    float* cols = lane_cols(s, ConvPass::forward, workspace, lane);
    float* pack = lane_pack(s, ConvPass::forward, workspace, lane);
    for (int64_t n = lane; n < s.N; n += L) {
      const float* xn = x + n * s.C * HW;
      float* yn = y + n * s.K * PQ;
      if (pointwise(s)) {
        lane_gemm(s, pack, false, false, s.K, HW, s.C, w, s.C, xn, HW, 0.0f, yn, HW);
        continue;
      }
      for (int64_t p0 = 0; p0 < P; p0 += rows) {
        const int64_t p1 = std::min(P, p0 + rows), TQ = (p1 - p0) * Q;
        im2col(s, xn, cols, p0, p1);
        lane_gemm(s, pack, false, false, s.K, TQ, CRS, w, CRS, cols, TQ, 0.0f, yn + p0 * Q, PQ);
      }
    }
  });
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx, void* workspace) {
  check_shape(s);
  if (s.depthwise()) return depthwise::run_backward_data(s, dy, w, dx);
  if (s.groups != 1) return ref::conv2d_backward_data<float>(s, dy, w, dx);
  if (flips(s)) {
    float* wf = static_cast<float*>(workspace);
    flip_weights(s, w, wf);
    return indirect_forward(flipped(s), dy, wf, dx, wf + round_floats(size_t(s.weight_numel())));
  }
  const int64_t HW = s.H * s.W, P = s.P(), Q = s.Q(), PQ = P * Q, CRS = s.C * s.R * s.S, rows = tile_rows(s);
  for_each_lane(s, [&](int64_t lane, int64_t L) {
    float* cols = lane_cols(s, ConvPass::backward_data, workspace, lane);
    float* pack = lane_pack(s, ConvPass::backward_data, workspace, lane);
    for (int64_t n = lane; n < s.N; n += L) {
      const float* dyn = dy + n * s.K * PQ;
      float* dxn = dx + n * s.C * HW;
      if (pointwise(s)) {
        lane_gemm(s, pack, true, false, s.C, HW, s.K, w, s.C, dyn, HW, 0.0f, dxn, HW);
        continue;
      }
      for (int64_t p0 = 0; p0 < P; p0 += rows) {
        const int64_t p1 = std::min(P, p0 + rows), TQ = (p1 - p0) * Q;
        lane_gemm(s, pack, true, false, CRS, TQ, s.K, w, CRS, dyn + p0 * Q, PQ, 0.0f, cols, TQ);
        col2im(s, cols, dxn, p0, p1);
      }
    }
  });
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw, void* workspace) {
  check_shape(s);
  if (s.depthwise()) return depthwise::run_backward_weight(s, x, dy, dw);
  if (s.groups != 1) return ref::conv2d_backward_weight<float>(s, x, dy, dw);
  if (indirect(s)) return indirect_backward_weight(s, x, dy, dw, static_cast<float*>(workspace));
  const int64_t HW = s.H * s.W, P = s.P(), Q = s.Q(), PQ = P * Q, CRS = s.C * s.R * s.S, rows = tile_rows(s);
  // Lane 0 sums into dw itself, the others into their partials; then dw += partials in
  // lane order.
  for_each_lane(s, [&](int64_t lane, int64_t L) {
    float* cols = lane_cols(s, ConvPass::backward_weight, workspace, lane);
    float* pack = lane_pack(s, ConvPass::backward_weight, workspace, lane);
    float* acc = lane == 0 ? dw : lane_dw(s, workspace, lane);
    for (int64_t n = lane; n < s.N; n += L) {
      const float* xn = x + n * s.C * HW;
      const float* dyn = dy + n * s.K * PQ;
      const float beta = n == lane ? 0.0f : 1.0f;  // a lane's first image overwrites
      if (pointwise(s)) {
        lane_gemm(s, pack, false, true, s.K, s.C, HW, dyn, HW, xn, HW, beta, acc, s.C);
        continue;
      }
      for (int64_t p0 = 0; p0 < P; p0 += rows) {
        const int64_t p1 = std::min(P, p0 + rows), TQ = (p1 - p0) * Q;
        im2col(s, xn, cols, p0, p1);
        lane_gemm(s, pack, false, true, s.K, CRS, TQ, dyn + p0 * Q, PQ, cols, TQ, p0 == 0 ? beta : 1.0f, acc, CRS);
      }
    }
  });
  for (int64_t lane = 1; lane < lanes(s); ++lane) accumulate(s.K * CRS, lane_dw(s, workspace, lane), dw);
}

}  // namespace onnas::kernels
