// ParamStore: the named persistent tensors of a model — weights, their gradients,
// optimizer state and batch-norm running statistics. Everything here outlives one
// step and is reported apart from the planned arena.
//
// A gradient may live outside the store: set_grad_view() points it into memory the
// caller owns (the search keeps only the gradients of the ops a step samples, in one
// block) or at nothing (an empty tensor of the right shape: no storage, reads as
// zero; optimizers and norms treat it so, and a program that would write it refuses
// to run). version() changes whenever a tensor is added or a gradient moves, so
// programs know to look their tensors up again.
//
//   ParamStore ps;
//   Tensor w = ps.add_weight("stem.conv.weight", Shape{48, 1, 3, 3});   // also makes its grad
//   Tensor g = ps.grad("stem.conv.weight");
//   ps.add("stem.bn.running_mean", Shape{48}, ParamKind::buffer);
//   for (const auto& e : ps.entries()) ...   // insertion order, stable
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tensor.h"

namespace onnas {

enum class ParamKind : uint8_t {
  weight,     // trained by an optimizer; has a gradient entry
  grad,       // the gradient of a weight ("<name>.grad" is not used: see grad())
  state,      // optimizer state (Adam moments, momentum)
  buffer,     // non-trained state updated by forward passes (BN running statistics)
  arch,       // architecture parameters (alpha, beta); trained, have a gradient
};
const char* param_kind_name(ParamKind k);

class ParamStore {
 public:
  struct Entry {
    std::string name;
    ParamKind kind;
    Buffer memory;  // its own block: a gradient, or 64 KiB and more; else it lies in a slab
    Tensor tensor;
    int grad_index = -1;  // index of the grad entry for weight/arch kinds
    size_t bytes = 0;     // the storage it holds (0: a view, or nothing)
  };

  // Adds a tensor (zero-filled). Throws if the name exists.
  Tensor add(const std::string& name, const Shape& shape, ParamKind kind, DType dtype = DType::f32);
  // Adds a trainable tensor and its gradient (kind weight or arch). The gradient of a
  // weight has no storage while gradients_of_weights_stored() is false (a search that
  // keeps them in a block of its own; see set_grad_view).
  Tensor add_weight(const std::string& name, const Shape& shape, ParamKind kind = ParamKind::weight);
  void store_weight_gradients(bool on) { store_weight_grads_ = on; }
  bool gradients_of_weights_stored() const { return store_weight_grads_; }

  bool contains(std::string_view name) const;
  // Throws onnas::Error naming the missing tensor.
  Tensor get(std::string_view name) const;
  const Entry& entry(std::string_view name) const;
  Tensor grad(std::string_view name) const;
  const Entry* find(std::string_view name) const;

  const std::vector<std::unique_ptr<Entry>>& entries() const { return entries_; }
  size_t bytes() const;
  size_t bytes(ParamKind kind) const;
  void zero_grads() const;

  // Points the gradient of weight/arch `name` at `data` (numel floats the caller owns
  // and keeps alive), or at nothing when data is nullptr. The store's own memory for
  // that gradient is freed.
  void set_grad_view(std::string_view name, float* data);
  uint64_t version() const { return version_; }
  // Changes only when a tensor is added (entries keep their addresses otherwise): what a
  // compiled program's look-ups depend on. Never the same for two stores.
  uint64_t layout_version() const { return layout_version_; }

 private:
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // Small tensors (weights, state, statistics under 64 KiB) are laid end to end in slabs
  // mapped from the system, not one malloc block each: a supernet has thousands of them,
  // added while its graph is built, and between them compilation's freed transients
  // would stay resident (holes malloc cannot give back).
  void* slab_allocate(size_t bytes);
  std::vector<Buffer> slabs_;
  size_t slab_used_ = 0;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> index_;  // lookups allocate nothing
  uint64_t version_ = 0;
  bool store_weight_grads_ = true;
  uint64_t layout_version_ = next_layout_version();  // unique across stores
  static uint64_t next_layout_version();
};

}  // namespace onnas
