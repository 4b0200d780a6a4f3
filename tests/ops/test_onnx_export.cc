// ONNX export: the protobuf wire format on hand-worked bytes, batch-norm folding on
// hand-worked numbers (a conv alone, convs under a concat, a conv whose output has
// another reader), and a small inference graph exported end to end. The file as a whole
// is checked by onnx.checker and run in ONNX Runtime in tests/cli/export.sh.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "graph/ir.h"
#include "ops/onnx_export.h"
#include "ops/ops.h"
#include "runtime/serialize/protobuf.h"

using namespace onnas;

TEST_CASE("the protobuf writer encodes tags, varints, floats and nested messages as the wire format says") {
  ProtoWriter w;
  w.varint_field(1, 150);  // the protobuf documentation's example: 08 96 01
  CHECK(w.bytes() == std::string("\x08\x96\x01", 3));
  ProtoWriter neg;
  neg.int_field(3, -1);  // ten bytes of varint
  CHECK(neg.bytes() == std::string("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11));
  ProtoWriter f;
  f.float_field(2, 1.0f);  // wire type 5, 0x3f800000 little-endian
  CHECK(f.bytes() == std::string("\x15\x00\x00\x80\x3f", 5));
  ProtoWriter inner;
  inner.string_field(2, "N");
  ProtoWriter outer;
  outer.message_field(1, inner);
  CHECK(outer.bytes() == std::string("\x0a\x03\x12\x01N", 5));
}

namespace {

onnx::Node conv(const std::string& x, const std::string& w, const std::string& y) {
  return {"Conv", "conv." + y, {x, w}, {y}, {onnx::Attribute::ints("kernel_shape", {1, 1})}};
}
onnx::Node batch_norm(const std::string& x, const std::string& y) {
  return {"BatchNormalization", "bn", {x, "gamma", "beta", "mean", "var"}, {y}, {onnx::Attribute::real("epsilon", 1.0f)}};
}
// gamma {1, 2}, beta {0.5, -1}, mean {1, 0}, var {3, 0}, eps 1: s = gamma / sqrt(var + eps)
// = {0.5, 2}, shift = beta - mean * s = {0, -1}.
void add_statistics(onnx::Graph& g) {
  g.initializers.push_back(onnx::Tensor::f32("gamma", {2}, {1, 2}));
  g.initializers.push_back(onnx::Tensor::f32("beta", {2}, {0.5f, -1}));
  g.initializers.push_back(onnx::Tensor::f32("mean", {2}, {1, 0}));
  g.initializers.push_back(onnx::Tensor::f32("var", {2}, {3, 0}));
}

}  // namespace

TEST_CASE("a batch norm after a conv folds into its weights and a new bias") {
  onnx::Model m;
  m.graph.initializers.push_back(onnx::Tensor::f32("c.weight", {2, 1, 1, 1}, {2, 3}));
  add_statistics(m.graph);
  m.graph.nodes = {conv("x", "c.weight", "y"), batch_norm("y", "z")};
  m.graph.outputs = {{"z", {}}};
  CHECK(ops::fold_batch_norms(m) == 1);
  REQUIRE(m.graph.nodes.size() == 1);
  const onnx::Node& c = m.graph.nodes[0];
  CHECK(c.outputs == std::vector<std::string>{"z"});
  REQUIRE(c.inputs == std::vector<std::string>{"x", "c.weight", "c.bias"});
  CHECK(m.graph.initializer("c.weight")->f32_data == std::vector<float>{1, 6});  // {2, 3} * {0.5, 2}
  CHECK(m.graph.initializer("c.bias")->f32_data == std::vector<float>{0, -1});
  CHECK(m.graph.initializers.size() == 2);  // the statistics are gone
}

TEST_CASE("a batch norm after a concat of convs folds into each conv's channels") {
  onnx::Model m;
  m.graph.initializers.push_back(onnx::Tensor::f32("a.weight", {1, 1, 1, 1}, {2}));
  m.graph.initializers.push_back(onnx::Tensor::f32("b.weight", {1, 1, 1, 1}, {3}));
  add_statistics(m.graph);
  m.graph.nodes = {conv("x", "a.weight", "ya"), conv("x", "b.weight", "yb"),
                   {"Concat", "cat", {"ya", "yb"}, {"y"}, {onnx::Attribute::integer("axis", 1)}}, batch_norm("y", "z")};
  m.graph.outputs = {{"z", {}}};
  CHECK(ops::fold_batch_norms(m) == 1);
  REQUIRE(m.graph.nodes.size() == 3);
  CHECK(m.graph.nodes[2].op_type == "Concat");
  CHECK(m.graph.nodes[2].outputs == std::vector<std::string>{"z"});
  CHECK(m.graph.initializer("a.weight")->f32_data == std::vector<float>{1});
  CHECK(m.graph.initializer("a.bias")->f32_data == std::vector<float>{0});
  CHECK(m.graph.initializer("b.weight")->f32_data == std::vector<float>{6});
  CHECK(m.graph.initializer("b.bias")->f32_data == std::vector<float>{-1});
}

TEST_CASE("a batch norm is not folded into a conv whose output something else reads") {
  onnx::Model m;
  m.graph.initializers.push_back(onnx::Tensor::f32("c.weight", {2, 1, 1, 1}, {2, 3}));
  add_statistics(m.graph);
  m.graph.nodes = {conv("x", "c.weight", "y"), batch_norm("y", "z"), {"Add", "add", {"y", "z"}, {"out"}, {}}};
  m.graph.outputs = {{"out", {}}};
  CHECK(ops::fold_batch_norms(m) == 0);
  CHECK(m.graph.nodes.size() == 3);
  CHECK(m.graph.initializer("c.weight")->f32_data == std::vector<float>{2, 3});
}

TEST_CASE("an inference graph exports to standard ONNX operators with an open batch and its normalization") {
  graph::Graph g;
  const graph::ValueId x = g.input("x", {Shape{1, 1, 4, 4}});
  const graph::ValueId w = g.param("conv.weight", {Shape{2, 1, 3, 3}});
  ops::BatchNormParams p{g.param("bn.weight", {Shape{2}}), g.param("bn.bias", {Shape{2}}),
                         g.param("bn.running_mean", {Shape{2}}), g.param("bn.running_var", {Shape{2}})};
  graph::ValueId y = ops::relu(g, ops::batch_norm(g, ops::conv2d(g, x, w, {.pad = 1}), p, {.training = false}));
  y = ops::avg_pool2d(g, y, {.kernel = 3, .stride = 2, .pad = 1});
  const graph::ValueId logits =
      ops::linear(g, ops::global_avg_pool(g, y), g.param("fc.weight", {Shape{3, 2}}), g.param("fc.bias", {Shape{3}}), "fc");
  ParamStore params;
  for (const graph::Value& v : g.values())
    if (v.kind == graph::ValueKind::param) {
      Tensor t = params.add_weight(v.name, v.type.shape);
      for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.25f * float(i + 1);
    }
  ops::OnnxExportOptions o;
  o.inputs = {x};
  o.outputs = {logits};
  o.input_mean = {0.5f};
  o.input_std = {0.25f};
  ops::OnnxExportReport r;
  const onnx::Model m = ops::export_onnx(g, params, o, &r);
  std::vector<std::string> types;
  for (const onnx::Node& n : m.graph.nodes) types.push_back(n.op_type);
  CHECK(types == std::vector<std::string>{"Sub", "Mul", "Conv", "Relu", "AveragePool", "GlobalAveragePool", "Flatten",
                                          "Gemm"});
  CHECK(r.folded_batch_norms == 1);
  CHECK(r.batch_norms_left == 0);
  REQUIRE(m.graph.inputs.size() == 1);
  CHECK(m.graph.inputs[0].name == "pixels");
  CHECK(std::get<std::string>(m.graph.inputs[0].dims[0]) == "N");
  CHECK(m.graph.initializer("input.inv_std")->f32_data == std::vector<float>{4.0f});
  CHECK(m.graph.outputs[0].name == g.name(logits));
  CHECK(!onnx::serialize(m).empty());

  // A training graph's batch norm has no ONNX form: refused naming the node.
  graph::Graph t;
  const graph::ValueId tx = t.input("x", {Shape{2, 2, 4, 4}});
  const graph::ValueId ty = ops::batch_norm(t, tx, {}, {.training = true}, "train_bn");
  ops::OnnxExportOptions to;
  to.inputs = {tx};
  to.outputs = {ty};
  CHECK_THROWS_WITH(ops::export_onnx(t, params, to),
                    Catch::Contains("batch_norm_train 'train_bn'") && Catch::Contains("no ONNX form"));
}
