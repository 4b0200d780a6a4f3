// ONNX models, the subset an inference network needs (onnx.proto: ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto), kept as plain structs and
// written with the protobuf wire-format writer (protobuf.h) — no protobuf library, no
// generated code, the same on every architecture onnas builds for. ops/onnx_export.h
// fills one from a graph.
//
//   onnx::Model m;
//   m.graph.inputs.push_back({"x", {"N", 1, 28, 28}});
//   m.graph.initializers.push_back(onnx::Tensor::f32("w", {8, 1, 3, 3}, weights));
//   m.graph.nodes.push_back({.op_type = "Conv", .name = "conv", .inputs = {"x", "w"}, .outputs = {"y"},
//                            .attributes = {onnx::Attribute::ints("pads", {1, 1, 1, 1})}});
//   m.graph.outputs.push_back({"y", {"N", 8, 28, 28}});
//   onnx::write("net.onnx", m);               // atomic
//
// Versions: IR 7 and opset 13 by default (ONNX 1.8, 2020): every runtime of the last
// years reads them, Debian 12's python3-onnx checks them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace onnas::onnx {

enum class DataType : int32_t { f32 = 1, i64 = 7 };  // TensorProto.DataType

struct Tensor {
  std::string name;
  std::vector<int64_t> dims;
  DataType type = DataType::f32;
  std::vector<float> f32_data;    // type f32
  std::vector<int64_t> i64_data;  // type i64

  static Tensor f32(std::string name, std::vector<int64_t> dims, std::vector<float> values);
  static Tensor i64(std::string name, std::vector<int64_t> dims, std::vector<int64_t> values);
  int64_t numel() const;
};

struct Attribute {
  std::string name;
  std::variant<int64_t, float, std::string, std::vector<int64_t>> value;

  static Attribute integer(std::string name, int64_t v) { return {std::move(name), v}; }
  static Attribute real(std::string name, float v) { return {std::move(name), v}; }
  static Attribute ints(std::string name, std::vector<int64_t> v) { return {std::move(name), std::move(v)}; }
};

struct Node {
  std::string op_type;
  std::string name;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
  const Attribute* find(const std::string& attribute) const;
};

// A graph input or output: a float tensor whose dimensions are numbers or named
// symbols (a batch size left open: "N").
struct ValueInfo {
  std::string name;
  std::vector<std::variant<int64_t, std::string>> dims;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;  // in an order where each input is produced before it is read
  std::vector<Tensor> initializers;
  std::vector<ValueInfo> inputs, outputs;
  std::string doc;

  Tensor* initializer(const std::string& name);  // nullptr when there is none of that name
  const Tensor* initializer(const std::string& name) const;
};

struct Model {
  Graph graph;
  int64_t ir_version = 7;
  int64_t opset = 13;
  std::string producer_name = "onnas", producer_version;
  std::string doc;
  std::map<std::string, std::string> metadata;  // ModelProto.metadata_props
};

// The model as ONNX protobuf bytes.
std::string serialize(const Model& model);
// Writes it atomically (runtime/serialize/atomic_file.h).
void write(const std::string& path, const Model& model);

}  // namespace onnas::onnx
