// safetensors files: how onnas stores weights, meta cells and checkpoints, in a format
// PyTorch, NumPy (safetensors package) and others read and write.
//
// Layout: 8-byte little-endian u64 N, then N bytes of JSON header
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
// then the data section; offsets are relative to its start. We write F32, I32 and BF16 (optimizer state), pad
// the header with spaces so the data starts 8-byte aligned, and write atomically.
//
//   std::vector<NamedTensor> ts = {{"w", w}, {"step", step_tensor}};
//   write_safetensors("ckpt.safetensors", ts, {{"epoch", "3"}});
//   SafetensorsFile f = read_safetensors("ckpt.safetensors");
//   Tensor w2 = f.get("w").tensor();
//
//   save_params("model.safetensors", store);                 // weights, arch, buffers
//   load_params("model.safetensors", store);                 // strict: all present, same shapes
//
// Reading trusts nothing in the file: every size, offset and type in the header is
// checked against the file before anything is allocated or copied, and every problem
// is one onnas::Error naming the file (and the tensor).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "runtime/param_store.h"
#include "runtime/tensor.h"

namespace onnas {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// Tensor names must be unique, non-empty and not "__metadata__".
void write_safetensors(const std::string& path, std::span<const NamedTensor> tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  Buffer data;  // owned, 64-byte aligned; numel * dtype_size(dtype) bytes

  Tensor tensor() const { return Tensor(data.data(), shape, dtype); }
};

struct SafetensorsFile {
  std::string path;
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsTensor> tensors;  // in data-offset order

  const SafetensorsTensor* find(const std::string& name) const;
  const SafetensorsTensor& get(const std::string& name) const;  // throws naming the file
};

// Largest header we accept; real headers are a few hundred bytes per tensor.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100u << 20;

SafetensorsFile read_safetensors(const std::string& path);
// The same for a file already in memory; `source` names it in messages.
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& source);

// An integer kept in a file's metadata (a checkpoint's step or epoch), trusted no
// more than the rest of the file: it must be there, be a whole decimal number, and
// lie in [low, high]. Throws onnas::Error naming the file, the key and the value.
int64_t metadata_integer(const std::map<std::string, std::string>& metadata, const std::string& key,
                         const std::string& path, int64_t low, int64_t high);
// The same for a decimal number (a meta cell's temperature): finite, in [low, high].
double metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                       const std::string& path, double low, double high);

// Throws onnas::Error naming the file, the tensor and the first NaN or infinity of an
// f32 tensor. Loaders check what they copy into a model: one NaN weight turns a whole
// network's output into NaN, silently unless --check-numerics is on.
void check_finite(const SafetensorsTensor& t, const std::string& path);

// A small set of ParamKinds, for choosing what save_params / load_params touch.
class ParamKindSet {
 public:
  constexpr ParamKindSet(std::initializer_list<ParamKind> kinds) {
    for (ParamKind k : kinds) bits_ |= uint8_t(1u << unsigned(k));
  }
  constexpr bool contains(ParamKind k) const { return (bits_ >> unsigned(k)) & 1u; }
  std::string str() const;  // "weight/arch/buffer"

 private:
  uint8_t bits_ = 0;
};

// What survives a run: weights, architecture parameters and BN running statistics.
// Gradients are transient; optimizer state is added for resumable checkpoints.
inline constexpr ParamKindSet kModelKinds{ParamKind::weight, ParamKind::arch, ParamKind::buffer};

// Writes the store's tensors of the chosen kinds, in store order. The metadata gets
// "onnas.kind.<name>" = kind for each tensor, so a reader can tell weights from buffers.
void save_params(const std::string& path, const ParamStore& store, ParamKindSet kinds = kModelKinds,
                 const std::map<std::string, std::string>& metadata = {});

struct LoadParamsOptions {
  ParamKindSet kinds = kModelKinds;
  bool strict = true;        // every store tensor of these kinds must be in the file
  bool allow_extra = false;  // file tensors that are not store tensors of these kinds are ignored
};

struct LoadParamsReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;  // store tensors absent from the file (only when !strict)
  std::vector<std::string> extra;    // file tensors not loaded (only when allow_extra)
  std::map<std::string, std::string> metadata;
};

// All-or-nothing: everything is checked before the first tensor is copied, so a failed
// load leaves the store as it was. Name and shape mismatches name the tensor, both
// shapes and the file; a NaN or an infinity in a tensor to load is refused.
LoadParamsReport load_params(const std::string& path, ParamStore& store, const LoadParamsOptions& options = {});

}  // namespace onnas
