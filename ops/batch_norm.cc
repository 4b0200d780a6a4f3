// batch_norm over N and the spatial axes, per channel C (x is [N, C, ...]).
//
// Training: y = (x - mean) * rstd * gamma + beta with batch statistics. mean[C] and
// rstd[C] are explicit outputs ({y, mean, rstd}): they are what the backward reads,
// so the planner sees them live until the backward node. With running statistics
// the node also updates them in place (a side effect, so it is never pruned even
// when y is unused). Evaluation: the running statistics normalize; y is the only output.
// gamma / beta are optional (affine = false in DARTS search cells); the node's
// attributes record which inputs are present, in the order x, gamma, beta,
// running_mean, running_var. Without them the backward reads y (= xhat) instead of
// x, so x need not be kept: batch_norm_backward_output.
//
// Dimension key: N batch, C channels, HW the product of the spatial sizes, M = N*HW.
#include <cmath>

#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/batch_norm.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::kNoValue;
using graph::RunContext;
using graph::TensorType;
using kernels::BatchNormShape;

struct BatchNormNode {
  BatchNormAttrs a;
  bool has_gamma = false, has_beta = false, has_running = false;

  size_t gamma_at() const { return 1; }
  size_t beta_at() const { return 1 + has_gamma; }
  size_t running_mean_at() const { return 1 + has_gamma + has_beta; }
  size_t running_var_at() const { return 2 + has_gamma + has_beta; }
  size_t num_inputs() const { return 1 + has_gamma + has_beta + 2 * has_running; }
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const BatchNormNode&) const = default;
};

// The backward nodes: inputs x, dy, then (train) mean, rstd or (eval) running_mean,
// running_var, then gamma if the forward had one. Outputs dx, and dgamma, dbeta when
// the forward was affine (both: a [C] vector costs nothing next to dx, and fixed
// positions keep the output names right).
struct BatchNormBackwardNode {
  BatchNormShape s;
  bool has_gamma = false;
  bool affine = false;
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const BatchNormBackwardNode&) const = default;
};

BatchNormShape bn_shape(const Shape& x, const BatchNormAttrs& a) {
  BatchNormShape s{.N = x[0], .C = x[1], .HW = 1, .eps = a.eps, .momentum = a.momentum};
  for (int i = 2; i < x.rank(); ++i) s.HW *= x[i];
  return s;
}

const float* optional_f32(const RunContext& c, bool present, size_t at) {
  return present ? c.inputs[at].f32() : nullptr;
}

// Shared by the three forward OpDefs: checks x and each per-channel input.
void check_inputs(const InferContext& c, const BatchNormNode& n) {
  c.expect_inputs(n.num_inputs());
  if (c.shape(0).rank() < 2) c.fail("input '{}' must be [N, C, ...], has shape {}", c.input_name(0), c.shape(0).str());
  c.expect_dtype(0, DType::f32);
  const int64_t C = c.shape(0)[1];
  for (size_t i = 1; i < c.num_inputs(); ++i) {
    c.expect_dtype(i, DType::f32);
    if (c.shape(i) != Shape{C})
      c.fail("'{}' has shape {}, input '{}' {} has {} channels", c.input_name(i), c.shape(i).str(), c.input_name(0),
             c.shape(0).str(), C);
  }
}

std::vector<TensorType> infer_train(const InferContext& c) {
  const BatchNormNode& n = c.attrs<BatchNormNode>();
  check_inputs(c, n);
  const BatchNormShape s = bn_shape(c.shape(0), n.a);
  if (s.N * s.HW < 2)
    c.fail("training needs more than one value per channel, input '{}' {} has {}", c.input_name(0), c.shape(0).str(),
           s.N * s.HW);
  const TensorType stat{Shape{s.C}, DType::f32};
  return {c.input(0), stat, stat};
}

void forward_train(const RunContext& c) {
  const BatchNormNode& n = c.attrs<BatchNormNode>();
  kernels::batch_norm_forward_train(
      bn_shape(c.inputs[0].shape(), n.a), c.inputs[0].f32(), optional_f32(c, n.has_gamma, n.gamma_at()),
      optional_f32(c, n.has_beta, n.beta_at()), c.outputs[0].f32(), c.outputs[1].f32(), c.outputs[2].f32(),
      n.has_running ? c.inputs[n.running_mean_at()].f32() : nullptr,
      n.has_running ? c.inputs[n.running_var_at()].f32() : nullptr);
}

// Hands the backward node's outputs to the inputs that want them.
void set_grads(GradContext& c, const BatchNormNode& n, const std::vector<ValueId>& outs) {
  if (c.needs_grad(0)) c.set_input_grad(0, outs[0]);
  if (n.has_gamma && c.needs_grad(n.gamma_at())) c.set_input_grad(n.gamma_at(), outs[1]);
  if (n.has_beta && c.needs_grad(n.beta_at())) c.set_input_grad(n.beta_at(), outs[2]);
}

void gradient_train(GradContext& c) {
  const BatchNormNode& n = c.attrs<BatchNormNode>();
  ONNAS_CHECK(c.output_grad(1) == kNoValue && c.output_grad(2) == kNoValue,
              "batch_norm '{}': mean and rstd are saved for the backward, not differentiable outputs", c.node().name);
  graph::Graph& g = c.graph();
  if (!n.has_gamma && !n.has_beta) {
    // Non-affine (the search cells): the output is xhat, so the backward reads it
    // instead of the input; the input (a conv's output) then dies after the forward,
    // and a relu after the norm is recomputed from the kept output.
    BatchNormBackwardNode b{bn_shape(c.input_shape(0), n.a), false, false};
    c.set_input_grad(0, g.add_node1(kBatchNormBackwardFromOutput, c.grad_name(), {c.output(0), c.output_grad(0), c.output(2)}, b));
    return;
  }
  std::vector<ValueId> inputs{c.input(0), c.output_grad(0), c.output(1), c.output(2)};
  if (n.has_gamma) inputs.push_back(c.input(n.gamma_at()));
  BatchNormBackwardNode b{bn_shape(c.input_shape(0), n.a), n.has_gamma, n.has_gamma || n.has_beta};
  set_grads(c, n, g.add_node(kBatchNormBackward, c.grad_name(), std::move(inputs), b));
}

std::vector<TensorType> infer_backward(const InferContext& c) {
  const BatchNormBackwardNode& b = c.attrs<BatchNormBackwardNode>();
  std::vector<TensorType> out{c.input(0)};
  if (b.affine) out.insert(out.end(), 2, TensorType{Shape{b.s.C}, DType::f32});
  return out;
}

}  // namespace

const graph::OpDef kBatchNormBackward{
    .name = "batch_norm_backward",
    .infer = infer_backward,
    .forward =
        [](const RunContext& c) {
          const BatchNormBackwardNode& b = c.attrs<BatchNormBackwardNode>();
          kernels::batch_norm_backward(b.s, c.inputs[0].f32(), c.inputs[1].f32(), optional_f32(c, b.has_gamma, 4),
                                       c.inputs[2].f32(), c.inputs[3].f32(), c.outputs[0].f32(),
                                       b.affine ? c.outputs[1].f32() : nullptr,
                                       b.affine ? c.outputs[2].f32() : nullptr);
        },
    .output_names = {"dx", "dgamma", "dbeta"},
};

// Non-affine training: inputs y (= xhat), dy, rstd; output dx (may take dy's place).
const graph::OpDef kBatchNormBackwardFromOutput{
    .name = "batch_norm_backward_output",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{c.input(0)}; },
    .forward =
        [](const RunContext& c) {
          const BatchNormBackwardNode& b = c.attrs<BatchNormBackwardNode>();
          kernels::batch_norm_backward_from_output(b.s, c.inputs[0].f32(), c.inputs[1].f32(), c.inputs[2].f32(),
                                                   c.outputs[0].f32());
        },
    .inplace_input = 1,
};

// In evaluation y = a[c] * x + b[c] with constants a = gamma * rstd_running, so
// dx = a * dy, dgamma = sum dy * xhat, dbeta = sum dy. There is no runtime kernel
// for this rare path (fine-tuning through a frozen-statistics BN); these loops are
// it, summing in double per channel so the result does not depend on threads.
const graph::OpDef kBatchNormEvalBackward{
    .name = "batch_norm_eval_backward",
    .infer = infer_backward,
    .forward =
        [](const RunContext& c) {
          const BatchNormBackwardNode& b = c.attrs<BatchNormBackwardNode>();
          const BatchNormShape& s = b.s;
          const float* x = c.inputs[0].f32();
          const float* dy = c.inputs[1].f32();
          const float* running_mean = c.inputs[2].f32();
          const float* running_var = c.inputs[3].f32();
          const float* gamma = optional_f32(c, b.has_gamma, 4);
          float* dx = c.outputs[0].f32();
          for (int64_t ch = 0; ch < s.C; ++ch) {
            const double rstd = 1.0 / std::sqrt(double(running_var[ch]) + double(s.eps));
            const float a = float((gamma ? double(gamma[ch]) : 1.0) * rstd);
            double sum_dy = 0, sum_dy_xhat = 0;
            for (int64_t nn = 0; nn < s.N; ++nn) {
              const int64_t at = (nn * s.C + ch) * s.HW;
              for (int64_t i = at; i < at + s.HW; ++i) {
                dx[i] = a * dy[i];
                sum_dy += double(dy[i]);
                sum_dy_xhat += double(dy[i]) * (double(x[i]) - double(running_mean[ch])) * rstd;
              }
            }
            if (b.affine) {
              c.outputs[1].f32()[ch] = float(sum_dy_xhat);
              c.outputs[2].f32()[ch] = float(sum_dy);
            }
          }
        },
    .output_names = {"dx", "dgamma", "dbeta"},
};

bool reads_output(const graph::Node& n) {
  const BatchNormNode& b = n.attrs.get<BatchNormNode>();
  return !b.has_gamma && !b.has_beta;
}

const graph::OpDef kBatchNormTrain{
    .name = "batch_norm_train",
    .infer = infer_train,
    .forward = forward_train,
    .gradient = gradient_train,
    .output_names = {"y", "mean", "rstd"},
    .backward_reads_output = reads_output,
};

// Training that also updates running_mean / running_var in place.
const graph::OpDef kBatchNormTrainUpdate{
    .name = "batch_norm_train_update",
    .infer = infer_train,
    .forward = forward_train,
    .gradient = gradient_train,
    .output_names = {"y", "mean", "rstd"},
    .side_effects = true,
    .backward_reads_output = reads_output,
};

const graph::OpDef kBatchNormEval{
    .name = "batch_norm_eval",
    .infer =
        [](const InferContext& c) {
          const BatchNormNode& n = c.attrs<BatchNormNode>();
          if (!n.has_running) c.fail("evaluation normalizes with running_mean and running_var, and none were given");
          check_inputs(c, n);
          return std::vector<TensorType>{c.input(0)};
        },
    .forward =
        [](const RunContext& c) {
          const BatchNormNode& n = c.attrs<BatchNormNode>();
          kernels::batch_norm_forward_infer(bn_shape(c.inputs[0].shape(), n.a), c.inputs[0].f32(),
                                            optional_f32(c, n.has_gamma, n.gamma_at()),
                                            optional_f32(c, n.has_beta, n.beta_at()),
                                            c.inputs[n.running_mean_at()].f32(), c.inputs[n.running_var_at()].f32(),
                                            c.outputs[0].f32());
        },
    .gradient =
        [](GradContext& c) {
          const BatchNormNode& n = c.attrs<BatchNormNode>();
          graph::Graph& g = c.graph();
          std::vector<ValueId> inputs{c.input(0), c.output_grad(0), c.input(n.running_mean_at()),
                                      c.input(n.running_var_at())};
          if (n.has_gamma) inputs.push_back(c.input(n.gamma_at()));
          BatchNormBackwardNode b{bn_shape(c.input_shape(0), n.a), n.has_gamma, n.has_gamma || n.has_beta};
          set_grads(c, n, g.add_node(kBatchNormEvalBackward, c.grad_name(), std::move(inputs), b));
        },
    // y[i] depends on x[i] alone, so y may overwrite x.
    .inplace_input = 0,
};

ValueId batch_norm(Graph& g, ValueId x, BatchNormParams p, BatchNormAttrs a, const std::string& name) {
  if ((p.running_mean == kNoValue) != (p.running_var == kNoValue))
    fail("batch_norm '{}': running_mean and running_var must be given together", name);
  BatchNormNode n{a, p.gamma != kNoValue, p.beta != kNoValue, p.running_mean != kNoValue};
  std::vector<ValueId> inputs{x};
  if (n.has_gamma) inputs.push_back(p.gamma);
  if (n.has_beta) inputs.push_back(p.beta);
  if (n.has_running) inputs.insert(inputs.end(), {p.running_mean, p.running_var});
  const graph::OpDef& op = !a.training ? kBatchNormEval : n.has_running ? kBatchNormTrainUpdate : kBatchNormTrain;
  return g.add_node(op, name, std::move(inputs), n).at(0);
}

// Inference only (running statistics): BatchNormalization, with gamma 1 and beta 0
// written out where the node has none. fold_batch_norms (ops/onnx_export.h) folds it
// into the convolution before it, where there is one.
const OnnxOp kBatchNormEvalOnnx{&kBatchNormEval, [](OnnxLowering& l) {
  const BatchNormNode& n = l.node().attrs.get<BatchNormNode>();
  const int64_t c = l.graph().shape(l.node().inputs[0])[1];
  const std::string gamma = n.has_gamma ? l.input(n.gamma_at())
                                        : l.constant(onnx::Tensor::f32(l.temp("gamma"), {c}, std::vector<float>(size_t(c), 1.0f)));
  const std::string beta = n.has_beta ? l.input(n.beta_at())
                                      : l.constant(onnx::Tensor::f32(l.temp("beta"), {c}, std::vector<float>(size_t(c), 0.0f)));
  l.emit("BatchNormalization",
         {l.input(0), gamma, beta, l.input(n.running_mean_at()), l.input(n.running_var_at())}, {l.output(0)},
         {onnx::Attribute::real("epsilon", n.a.eps)});
}};

}  // namespace onnas::ops
