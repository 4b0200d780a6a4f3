#include "runtime/serialize/onnx.h"

#include <bit>

#include "runtime/error.h"
#include "runtime/serialize/atomic_file.h"
#include "runtime/serialize/protobuf.h"

namespace onnas::onnx {

// Field numbers of onnx.proto (ONNX 1.8 and later; none was ever renumbered).
namespace field {
constexpr uint32_t kModelIrVersion = 1, kModelProducerName = 2, kModelProducerVersion = 3, kModelDoc = 6,
                   kModelGraph = 7, kModelOpsetImport = 8, kModelMetadataProps = 14;
constexpr uint32_t kOpsetDomain = 1, kOpsetVersion = 2;
constexpr uint32_t kEntryKey = 1, kEntryValue = 2;
constexpr uint32_t kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphDoc = 10, kGraphInput = 11,
                   kGraphOutput = 12;
constexpr uint32_t kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5;
constexpr uint32_t kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrS = 4, kAttrInts = 8, kAttrType = 20;
constexpr uint32_t kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9;
constexpr uint32_t kValueInfoName = 1, kValueInfoType = 2;
constexpr uint32_t kTypeTensor = 1, kTypeTensorElemType = 1, kTypeTensorShape = 2;
constexpr uint32_t kShapeDim = 1, kDimValue = 1, kDimParam = 2;
}  // namespace field

// AttributeProto.AttributeType
enum AttributeType : int64_t { kFloat = 1, kInt = 2, kString = 3, kInts = 7 };

Tensor Tensor::f32(std::string name, std::vector<int64_t> dims, std::vector<float> values) {
  Tensor t{std::move(name), std::move(dims), DataType::f32, std::move(values), {}};
  ONNAS_CHECK(int64_t(t.f32_data.size()) == t.numel(), "onnx tensor '{}': {} values for {} elements", t.name,
              t.f32_data.size(), t.numel());
  return t;
}

Tensor Tensor::i64(std::string name, std::vector<int64_t> dims, std::vector<int64_t> values) {
  Tensor t{std::move(name), std::move(dims), DataType::i64, {}, std::move(values)};
  ONNAS_CHECK(int64_t(t.i64_data.size()) == t.numel(), "onnx tensor '{}': {} values for {} elements", t.name,
              t.i64_data.size(), t.numel());
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

const Attribute* Node::find(const std::string& attribute) const {
  for (const Attribute& a : attributes)
    if (a.name == attribute) return &a;
  return nullptr;
}

const Tensor* Graph::initializer(const std::string& name) const {
  for (const Tensor& t : initializers)
    if (t.name == name) return &t;
  return nullptr;
}

Tensor* Graph::initializer(const std::string& name) {
  return const_cast<Tensor*>(static_cast<const Graph&>(*this).initializer(name));
}

namespace {

// raw_data holds the values little-endian, which is how every host onnas builds for
// (x86-64, aarch64) keeps them in memory.
static_assert(std::endian::native == std::endian::little, "raw_data is written from memory as little-endian");

ProtoWriter tensor_proto(const Tensor& t) {
  ProtoWriter w;
  w.repeated_int_field(field::kTensorDims, t.dims);
  w.int_field(field::kTensorDataType, int64_t(t.type));
  w.string_field(field::kTensorName, t.name);
  if (t.type == DataType::f32)
    w.bytes_field(field::kTensorRawData, std::string_view(reinterpret_cast<const char*>(t.f32_data.data()),
                                                          t.f32_data.size() * sizeof(float)));
  else
    w.bytes_field(field::kTensorRawData, std::string_view(reinterpret_cast<const char*>(t.i64_data.data()),
                                                          t.i64_data.size() * sizeof(int64_t)));
  return w;
}

ProtoWriter attribute_proto(const Attribute& a) {
  ProtoWriter w;
  w.string_field(field::kAttrName, a.name);
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    w.int_field(field::kAttrI, *i);
    w.int_field(field::kAttrType, kInt);
  } else if (const auto* f = std::get_if<float>(&a.value)) {
    w.float_field(field::kAttrF, *f);
    w.int_field(field::kAttrType, kFloat);
  } else if (const auto* s = std::get_if<std::string>(&a.value)) {
    w.string_field(field::kAttrS, *s);
    w.int_field(field::kAttrType, kString);
  } else {
    w.repeated_int_field(field::kAttrInts, std::get<std::vector<int64_t>>(a.value));
    w.int_field(field::kAttrType, kInts);
  }
  return w;
}

ProtoWriter node_proto(const Node& n) {
  ProtoWriter w;
  for (const std::string& i : n.inputs) w.string_field(field::kNodeInput, i);
  for (const std::string& o : n.outputs) w.string_field(field::kNodeOutput, o);
  w.string_field(field::kNodeName, n.name);
  w.string_field(field::kNodeOpType, n.op_type);
  for (const Attribute& a : n.attributes) w.message_field(field::kNodeAttribute, attribute_proto(a));
  return w;
}

ProtoWriter value_info_proto(const ValueInfo& v) {
  ProtoWriter shape;
  for (const auto& d : v.dims) {
    ProtoWriter dim;
    if (const auto* n = std::get_if<int64_t>(&d))
      dim.int_field(field::kDimValue, *n);
    else
      dim.string_field(field::kDimParam, std::get<std::string>(d));
    shape.message_field(field::kShapeDim, dim);
  }
  ProtoWriter tensor;
  tensor.int_field(field::kTypeTensorElemType, int64_t(DataType::f32));
  tensor.message_field(field::kTypeTensorShape, shape);
  ProtoWriter type;
  type.message_field(field::kTypeTensor, tensor);
  ProtoWriter w;
  w.string_field(field::kValueInfoName, v.name);
  w.message_field(field::kValueInfoType, type);
  return w;
}

}  // namespace

std::string serialize(const Model& model) {
  const Graph& g = model.graph;
  ProtoWriter graph;
  for (const Node& n : g.nodes) graph.message_field(field::kGraphNode, node_proto(n));
  graph.string_field(field::kGraphName, g.name);
  for (const Tensor& t : g.initializers) graph.message_field(field::kGraphInitializer, tensor_proto(t));
  if (!g.doc.empty()) graph.string_field(field::kGraphDoc, g.doc);
  for (const ValueInfo& v : g.inputs) graph.message_field(field::kGraphInput, value_info_proto(v));
  for (const ValueInfo& v : g.outputs) graph.message_field(field::kGraphOutput, value_info_proto(v));

  ProtoWriter opset;
  opset.string_field(field::kOpsetDomain, "");  // the default domain: ai.onnx
  opset.int_field(field::kOpsetVersion, model.opset);
  ProtoWriter w;
  w.int_field(field::kModelIrVersion, model.ir_version);
  w.string_field(field::kModelProducerName, model.producer_name);
  w.string_field(field::kModelProducerVersion, model.producer_version);
  if (!model.doc.empty()) w.string_field(field::kModelDoc, model.doc);
  w.message_field(field::kModelGraph, graph);
  w.message_field(field::kModelOpsetImport, opset);
  for (const auto& [key, value] : model.metadata) {
    ProtoWriter entry;
    entry.string_field(field::kEntryKey, key);
    entry.string_field(field::kEntryValue, value);
    w.message_field(field::kModelMetadataProps, entry);
  }
  return w.bytes();
}

void write(const std::string& path, const Model& model) { write_file_atomic(path, serialize(model)); }

}  // namespace onnas::onnx
