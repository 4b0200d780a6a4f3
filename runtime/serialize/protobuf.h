// The protobuf wire format, writing side only: what it takes to write an ONNX model
// (runtime/serialize/onnx.h) without a protobuf library or generated code. A message is
// a sequence of fields, each a tag (field number << 3 | wire type) and a value: a
// varint (integers, enums, bools), 32 bits (float), or a length-prefixed run of bytes
// (strings, bytes, nested messages, packed repeated scalars).
//
//   ProtoWriter dim;
//   dim.string_field(2, "N");                 // TensorShapeProto.Dimension.dim_param
//   ProtoWriter shape;
//   shape.message_field(1, dim);              // TensorShapeProto.dim
//   std::string bytes = shape.bytes();
//
// Nested messages are built first and copied into their parent: fine for models of a
// few megabytes (the copies cost a few times the model's bytes, once).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace onnas {

class ProtoWriter {
 public:
  enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

  void varint_field(uint32_t field, uint64_t value) {
    tag(field, kVarint);
    varint(value);
  }
  // int32 and int64 fields: negative values take ten bytes, as protobuf writes them.
  void int_field(uint32_t field, int64_t value) { varint_field(field, static_cast<uint64_t>(value)); }
  void float_field(uint32_t field, float value) {
    tag(field, kFixed32);
    uint32_t bits;
    std::memcpy(&bits, &value, 4);
    for (int i = 0; i < 4; ++i) out_ += char((bits >> (8 * i)) & 0xff);  // little-endian on every host
  }
  void bytes_field(uint32_t field, std::string_view bytes) {
    tag(field, kLengthDelimited);
    varint(bytes.size());
    out_.append(bytes);
  }
  void string_field(uint32_t field, std::string_view text) { bytes_field(field, text); }
  void message_field(uint32_t field, const ProtoWriter& message) { bytes_field(field, message.bytes()); }
  // A repeated integer field, one tag per element (the unpacked form every reader takes).
  void repeated_int_field(uint32_t field, std::span<const int64_t> values) {
    for (int64_t v : values) int_field(field, v);
  }

  const std::string& bytes() const { return out_; }

 private:
  void tag(uint32_t field, WireType type) { varint((uint64_t(field) << 3) | type); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_ += char((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out_ += char(v);
  }
  std::string out_;
};

}  // namespace onnas
