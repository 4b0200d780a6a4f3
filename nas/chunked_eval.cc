#include "nas/chunked_eval.h"

#include <algorithm>
#include <cstring>

#include "ops/op_list.h"
#include "ops/ops.h"
#include "runtime/error.h"

namespace onnas::nas {

using graph::Graph;
using graph::Node;
using graph::ValueId;

ChunkedEval::ChunkedEval(Graph g, ValueId x, ValueId out) : x_(x), out_(out) {
  chunk_ = g.shape(x)[0];
  ONNAS_CHECK(g.shape(out)[0] == chunk_, "ChunkedEval: output {} has batch {}, input has {}", g.name(out),
              g.shape(out)[0], chunk_);
  // depth[v]: the largest level of a batch norm on a path from the input to v (0: none).
  std::vector<int> depth(g.num_values(), 0);
  std::vector<std::vector<size_t>> by_level;
  const size_t forward_nodes = g.num_nodes();
  for (size_t k = 0; k < forward_nodes; ++k) {
    const Node n = g.node(graph::NodeId(k));  // a copy: adding nodes moves the graph's nodes
    int d = 0;
    for (ValueId in : n.inputs) d = std::max(d, depth[size_t(in)]);
    if (n.op == &ops::kBatchNormTrain || n.op == &ops::kBatchNormTrainUpdate)
      fail("ChunkedEval: batch norm '{}' uses the statistics of its own chunk; emit the network with evaluation-mode "
           "batch norms",
           n.name);
    if (n.op == &ops::kBatchNormEval) {
      const size_t k_in = n.inputs.size();
      ONNAS_CHECK(k_in >= 3, "ChunkedEval: batch norm '{}' has no running statistics", n.name);
      const graph::Value& mean = g.value(n.inputs[k_in - 2]);
      const graph::Value& var = g.value(n.inputs[k_in - 1]);
      ONNAS_CHECK(mean.kind == graph::ValueKind::param && var.kind == graph::ValueKind::param,
                  "ChunkedEval: batch norm '{}': running statistics must be parameters", n.name);
      const Shape s = g.shape(n.inputs[0]);
      Norm norm{.moments = graph::kNoValue, .mean = mean.name, .var = var.name, .channels = s[1],
                .per_channel = s.numel() / s[1]};
      norm.moments = ops::channel_moments(g, n.inputs[0], n.name + ".moments");
      ++d;
      if (by_level.size() < size_t(d)) by_level.resize(size_t(d));
      by_level[size_t(d - 1)].push_back(norms_.size());
      norms_.push_back(std::move(norm));
    }
    for (ValueId o : n.outputs) depth[size_t(o)] = d;
  }
  graph::CompileOptions co{.outputs = {out}};
  for (const Norm& n : norms_) co.outputs.push_back(n.moments);
  program_ = graph::compile(g, co);
  program_.release_planning_data();
  size_t widest = 0;  // the most channels of one level's norms
  for (auto& idx : by_level) {
    Level level;
    size_t channels = 0;
    for (size_t i : idx) {
      level.steps = std::max(level.steps, size_t(program_.producer_step(norms_[i].moments)) + 1);
      channels += size_t(norms_[i].channels);
    }
    level.norms = std::move(idx);
    widest = std::max(widest, channels);
    levels_.push_back(std::move(level));
  }
  shift_.assign(widest, 0.0);
  sum_.assign(widest, 0.0);
  sum_sq_.assign(widest, 0.0);
}

size_t ChunkedEval::table_bytes() const {
  return program_.table_bytes() + (shift_.capacity() + sum_.capacity() + sum_sq_.capacity()) * sizeof(double);
}

void ChunkedEval::run(Arena& arena, ParamStore& params, const Tensor& x_all, const Tensor& out_all) {
  const int64_t n = x_all.shape()[0];
  if (n % chunk_ != 0) fail("chunked evaluation: {} images do not split into chunks of {}", n, chunk_);
  ONNAS_CHECK(out_all.shape()[0] == n && out_all.dtype() == DType::f32, "ChunkedEval: output tensor {} for {} images",
              out_all.shape().str(), n);
  const int64_t chunks = n / chunk_;
  const int64_t row = x_all.numel() / n;
  Shape chunk_shape = x_all.shape();
  chunk_shape[0] = chunk_;
  auto feed_chunk = [&](int64_t c) { return Tensor(x_all.f32() + c * chunk_ * row, chunk_shape); };

  for (Level& level : levels_) {
    // Chunk 0's shift is the common one; each chunk's sums move to it exactly:
    // sum (x - s)^2 = sum (x - s_k)^2 + 2 (s_k - s) sum (x - s_k) + m (s_k - s)^2.
    for (int64_t c = 0; c < chunks; ++c) {
      program_.run_prefix(arena, params, {{x_, feed_chunk(c)}}, level.steps);
      size_t at = 0;  // the norm's first channel in the accumulators
      for (size_t i : level.norms) {
        const Norm& norm = norms_[i];
        const int64_t C = norm.channels;
        const double m = double(norm.per_channel);
        const float* v = program_.output(arena, norm.moments).f32();
        for (int64_t ch = 0; ch < C; ++ch, ++at) {
          const double sk = v[ch], s1 = v[C + ch], s2 = v[2 * C + ch];
          if (c == 0) {
            shift_[at] = sk, sum_[at] = s1, sum_sq_[at] = s2;
            continue;
          }
          const double delta = sk - shift_[at];
          sum_[at] += s1 + m * delta;
          sum_sq_[at] += s2 + 2 * delta * s1 + m * delta * delta;
        }
      }
    }
    size_t at = 0;
    for (size_t i : level.norms) {
      const Norm& norm = norms_[i];
      const double M = double(chunks * norm.per_channel);
      float* mean = params.get(norm.mean).f32();
      float* var = params.get(norm.var).f32();
      for (int64_t ch = 0; ch < norm.channels; ++ch, ++at) {
        const double dmean = sum_[at] / M;
        mean[ch] = float(shift_[at] + dmean);
        var[ch] = float(std::max(0.0, sum_sq_[at] / M - dmean * dmean));  // biased: what normalizes
      }
    }
  }
  const int64_t out_row = out_all.numel() / n;
  for (int64_t c = 0; c < chunks; ++c) {
    program_.run(arena, params, {{x_, feed_chunk(c)}});
    const Tensor o = program_.output(arena, out_);
    std::memcpy(out_all.f32() + c * chunk_ * out_row, o.f32(), size_t(chunk_ * out_row) * sizeof(float));
  }
}

}  // namespace onnas::nas
