// ONNX export of inference graphs. The forward nodes that a graph's outputs need are
// lowered one by one to standard ONNX operators (opset 13), each by its op's own file
// (one op, one file: the lowering sits beside the kernel call and the gradient rule),
// parameters become initializers, and a batch norm that follows a convolution (or a
// concat of convolutions, as in a factorized reduce) is folded into it.
//
//   Graph g;
//   nas::SearchNet net = nas::emit_discrete_net(g, space, genotype, 1, /*training=*/false);
//   onnx::Model m = export_onnx(g, params, {.inputs = {net.x}, .outputs = {net.logits}});
//   onnx::write("net.onnx", m);
//
// An op without a lowering (a training-mode batch norm, a loss, anything of the
// backward) is refused naming the node.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"
#include "runtime/param_store.h"
#include "runtime/serialize/onnx.h"

namespace onnas::ops {

struct OnnxExportOptions {
  std::vector<graph::ValueId> inputs, outputs;
  // The first dimension of every input and output, as a named symbol so that the model
  // takes any batch ("" keeps the graph's number). Every lowering is batch-agnostic.
  std::string batch_symbol = "N";
  bool fold_batch_norms = true;
  // With a mean and std per channel: the model reads raw pixels in [0, 1] as input
  // `input_name` and normalizes them itself, x = (pixels - mean[c]) * (1 / std[c]) (how
  // onnas normalizes, data/dataset.h), before input 0.
  std::vector<float> input_mean, input_std;
  std::string input_name = "pixels";
};

struct OnnxExportReport {
  size_t nodes = 0, initializers = 0, folded_batch_norms = 0, batch_norms_left = 0;
};

onnx::Model export_onnx(const graph::Graph& g, const ParamStore& params, const OnnxExportOptions& options,
                        OnnxExportReport* report = nullptr);

// Folds each BatchNormalization whose input is a Conv's output (read by nothing else),
// or a Concat of such Convs, into those Convs' weights and biases: W' = W * s, b' =
// (b - mean) * s + beta with s = gamma / sqrt(var + eps) per output channel. Returns
// how many were folded; unused initializers are dropped.
size_t fold_batch_norms(onnx::Model& model);

// What an op's lowering sees: its node, the ONNX names of its inputs and outputs, and
// a way to emit ONNX nodes and constants.
class OnnxLowering {
 public:
  virtual ~OnnxLowering() = default;
  virtual const graph::Graph& graph() const = 0;
  virtual const graph::Node& node() const = 0;
  // The ONNX name of the node's input i; a parameter becomes an initializer.
  virtual std::string input(size_t i) = 0;
  // The ONNX name of the node's output i.
  virtual std::string output(size_t i) = 0;
  // A fresh name for an intermediate value or constant: "<node>.<suffix>".
  virtual std::string temp(const std::string& suffix) = 0;
  virtual std::string constant(onnx::Tensor t) = 0;  // t.name from temp(); returns it
  virtual void emit(std::string op_type, std::vector<std::string> inputs, std::vector<std::string> outputs,
                    std::vector<onnx::Attribute> attributes = {}) = 0;
  // Throws onnas::Error naming the node and why it has no ONNX form.
  [[noreturn]] void unsupported(const std::string& why) const;
};

struct OnnxOp {
  const graph::OpDef* op;
  void (*lower)(OnnxLowering& lowering);
};

// The lowerings, each defined in its op's file; the list is written once here.
#define ONNAS_ONNX_LOWERINGS(X) \
  X(kReluOnnx)                  \
  X(kConv2dOnnx)                \
  X(kBatchNormEvalOnnx)         \
  X(kMaxPool2dOnnx)             \
  X(kAvgPool2dOnnx)             \
  X(kGlobalAvgPoolOnnx)         \
  X(kLinearOnnx)                \
  X(kAddOnnx)                   \
  X(kScaleOnnx)                 \
  X(kConcatOnnx)                \
  X(kSliceOnnx)                 \
  X(kCropOnnx)                  \
  X(kStopGradientOnnx)
#define ONNAS_DECLARE_ONNX_OP(name) extern const OnnxOp name;
ONNAS_ONNX_LOWERINGS(ONNAS_DECLARE_ONNX_OP)
#undef ONNAS_DECLARE_ONNX_OP

}  // namespace onnas::ops
