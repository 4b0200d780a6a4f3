// crop: y = x[:, :, top:top+h, left:left+w] (aligning feature maps of different
// sizes). The backward writes dy back into a zeroed tensor of x's shape and reads
// nothing of the forward. A later op's backward that reads y (a conv's weight
// gradient in a factorized reduce) gets it recomputed when x is at hand anyway
// (crop_recompute, graph/op.h).
//
// Dimension key: N C H W input, h w the crop size.
#include "graph/op.h"
#include "ops/op_list.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/kernels/elementwise.h"

namespace onnas::ops {
namespace {

using graph::GradContext;
using graph::InferContext;
using graph::RunContext;
using graph::TensorType;

struct CropNode {
  int64_t top, left, h, w;
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const CropNode&) const = default;
};

// x's shape rides along for the backward, which knows only dy.
struct CropBackwardNode {
  Shape x;
  CropNode crop;
  // Equal attributes share one copy in a compiled program (graph/attrs.h).
  bool operator==(const CropBackwardNode&) const = default;
};

}  // namespace

const graph::OpDef kCropBackward{
    .name = "crop_backward",
    .infer = [](const InferContext& c) { return std::vector<TensorType>{{c.attrs<CropBackwardNode>().x}}; },
    .forward =
        [](const RunContext& c) {
          const CropBackwardNode& a = c.attrs<CropBackwardNode>();
          kernels::crop2d_backward(a.x[0], a.x[1], a.x[2], a.x[3], a.crop.top, a.crop.left, a.crop.h, a.crop.w,
                                   c.inputs[0].f32(), c.outputs[0].f32());
        },
};

namespace {

void crop_forward(const RunContext& c) {
  const CropNode& a = c.attrs<CropNode>();
  const Shape& x = c.inputs[0].shape();
  kernels::crop2d(x[0], x[1], x[2], x[3], a.top, a.left, a.h, a.w, c.inputs[0].f32(), c.outputs[0].f32());
}

}  // namespace

// crop(x) again in the backward; input 1 only orders it (see graph::GradContext).
const graph::OpDef kCropRecompute{
    .name = "crop_recompute",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(2);
          const CropNode& a = c.attrs<CropNode>();
          const Shape& x = c.shape(0);
          return std::vector<TensorType>{{Shape{x[0], x[1], a.h, a.w}}};
        },
    .forward = crop_forward,
};

const graph::OpDef kCrop{
    .name = "crop",
    .infer =
        [](const InferContext& c) {
          c.expect_inputs(1);
          c.expect_rank(0, 4);
          c.expect_dtype(0, DType::f32);
          const CropNode& a = c.attrs<CropNode>();
          const Shape& x = c.shape(0);
          if (a.top < 0 || a.left < 0 || a.h < 1 || a.w < 1 || a.top + a.h > x[2] || a.left + a.w > x[3])
            c.fail("window rows [{}, {}) x columns [{}, {}) is not inside '{}' {}", a.top, a.top + a.h, a.left,
                   a.left + a.w, c.input_name(0), x.str());
          return std::vector<TensorType>{{Shape{x[0], x[1], a.h, a.w}}};
        },
    .forward = crop_forward,
    .gradient =
        [](GradContext& c) {
          CropBackwardNode b{c.input_shape(0), c.attrs<CropNode>()};
          c.set_input_grad(0, c.graph().add_node1(kCropBackward, c.grad_name(), {c.output_grad(0)}, b));
        },
    .recompute = &kCropRecompute,
};

ValueId crop(Graph& g, ValueId x, int64_t top, int64_t left, int64_t h, int64_t w, const std::string& name) {
  return g.add_node1(kCrop, name, {x}, CropNode{top, left, h, w});
}

// x[:, :, top:top+h, left:left+w]: Slice along axes 2 and 3.
const OnnxOp kCropOnnx{&kCrop, [](OnnxLowering& l) {
  const CropNode& a = l.node().attrs.get<CropNode>();
  const std::string starts = l.constant(onnx::Tensor::i64(l.temp("starts"), {2}, {a.top, a.left}));
  const std::string ends = l.constant(onnx::Tensor::i64(l.temp("ends"), {2}, {a.top + a.h, a.left + a.w}));
  const std::string axes = l.constant(onnx::Tensor::i64(l.temp("axes"), {2}, {2, 3}));
  l.emit("Slice", {l.input(0), starts, ends, axes}, {l.output(0)});
}};

}  // namespace onnas::ops
