// channel_moments: for each channel c of x [N, C, ...], three numbers: a shift s_c (x's
// first value in the channel), sum(x - s_c) and sum((x - s_c)^2) over N and the spatial
// axes, summed in double; output [3, C] (shifts, sums, sums of squares). Statistics
// gathered over several runs combine exactly around a common shift in double, and the
// shift keeps the variance free of cancellation when |mean| >> std (as the training
// batch norm's kernel does). Used by the chunked evaluation with the whole batch's
// batch-norm statistics (nas/chunked_eval.h). No gradient: it measures, it does not
// train. A plain loop is the kernel: one read of x, next to the forward it measures.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/ops.h"

namespace onnas::ops {

const graph::OpDef kChannelMoments{
    .name = "channel_moments",
    .infer =
        [](const graph::InferContext& c) {
          c.expect_inputs(1);
          c.expect_dtype(0, DType::f32);
          if (c.shape(0).rank() < 2 || c.shape(0).numel() == 0)
            c.fail("input '{}' must be a non-empty [N, C, ...], has shape {}", c.input_name(0), c.shape(0).str());
          return std::vector<graph::TensorType>{{Shape{3, c.shape(0)[1]}, DType::f32}};
        },
    .forward =
        [](const graph::RunContext& c) {
          const Shape& s = c.inputs[0].shape();
          const int64_t N = s[0], C = s[1], HW = s.numel() / (N * C);
          const float* x = c.inputs[0].f32();
          float* out = c.outputs[0].f32();
          for (int64_t ch = 0; ch < C; ++ch) {
            const double shift = x[ch * HW];
            double s1 = 0, s2 = 0;
            for (int64_t n = 0; n < N; ++n) {
              const float* p = x + (n * C + ch) * HW;
              for (int64_t k = 0; k < HW; ++k) {
                const double d = double(p[k]) - shift;
                s1 += d;
                s2 += d * d;
              }
            }
            out[ch] = float(shift);
            out[C + ch] = float(s1);
            out[2 * C + ch] = float(s2);
          }
        },
};

ValueId channel_moments(Graph& g, ValueId x, const std::string& name) {
  return g.add_node1(kChannelMoments, name, {x});
}

}  // namespace onnas::ops
