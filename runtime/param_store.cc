#include "runtime/param_store.h"

#include <algorithm>
#include <atomic>

namespace onnas {

uint64_t ParamStore::next_layout_version() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

namespace {
// Slabs double from the smallest mapped block to 1 MiB, so a small store maps little
// more than it holds (a mapped block counts whole in the memory the tools measure).
constexpr size_t kFirstSlabBytes = size_t(64) << 10, kSlabBytes = size_t(1) << 20;
}  // namespace

void* ParamStore::slab_allocate(size_t bytes) {
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (slabs_.empty() || slab_used_ + rounded > slabs_.back().bytes()) {
    const size_t size = slabs_.empty() ? kFirstSlabBytes : std::min(2 * slabs_.back().bytes(), kSlabBytes);
    slabs_.emplace_back(size);  // mapped, zero; resident only where written
    slab_used_ = 0;
  }
  void* p = static_cast<std::byte*>(slabs_.back().data()) + slab_used_;
  slab_used_ += rounded;
  return p;
}

const char* param_kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::weight: return "weight";
    case ParamKind::grad: return "grad";
    case ParamKind::state: return "state";
    case ParamKind::buffer: return "buffer";
    case ParamKind::arch: return "arch";
  }
  return "?";
}

Tensor ParamStore::add(const std::string& name, const Shape& shape, ParamKind kind, DType dtype) {
  if (index_.count(name)) fail("parameter '{}' is defined twice", name);
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->kind = kind;
  e->bytes = size_t(shape.numel()) * dtype_size(dtype);
  void* data = nullptr;
  if (kind == ParamKind::grad || e->bytes >= kFirstSlabBytes) {  // a gradient may be freed (set_grad_view)
    e->memory = Buffer(e->bytes);
    data = e->memory.data();
  } else if (e->bytes > 0) {
    data = slab_allocate(e->bytes);
  }
  e->tensor = Tensor(data, shape, dtype);
  index_.emplace(name, entries_.size());
  entries_.push_back(std::move(e));
  ++version_;
  layout_version_ = next_layout_version();
  return entries_.back()->tensor;
}

Tensor ParamStore::add_weight(const std::string& name, const Shape& shape, ParamKind kind) {
  ONNAS_CHECK(kind == ParamKind::weight || kind == ParamKind::arch, "add_weight('{}') needs kind weight or arch", name);
  Tensor t = add(name, shape, kind);
  size_t self = entries_.size() - 1;
  if (kind == ParamKind::weight && !store_weight_grads_) {
    add(name + "@grad", Shape{0}, ParamKind::grad);  // no storage; the right shape below
    entries_.back()->tensor = Tensor(nullptr, shape);
  } else {
    add(name + "@grad", shape, ParamKind::grad);
  }
  entries_[self]->grad_index = int(entries_.size() - 1);
  return t;
}

bool ParamStore::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

const ParamStore::Entry* ParamStore::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : entries_[it->second].get();
}

const ParamStore::Entry& ParamStore::entry(std::string_view name) const {
  const Entry* e = find(name);
  if (!e) fail("no parameter named '{}'", name);
  return *e;
}

Tensor ParamStore::get(std::string_view name) const { return entry(name).tensor; }

Tensor ParamStore::grad(std::string_view name) const {
  const Entry& e = entry(name);
  if (e.grad_index < 0) fail("parameter '{}' ({}) has no gradient", name, param_kind_name(e.kind));
  return entries_[e.grad_index]->tensor;
}

size_t ParamStore::bytes() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e->bytes;
  return n;
}

size_t ParamStore::bytes(ParamKind kind) const {
  size_t n = 0;
  for (const auto& e : entries_)
    if (e->kind == kind) n += e->bytes;
  return n;
}

void ParamStore::set_grad_view(std::string_view name, float* data) {
  const Entry& e = entry(name);
  if (e.grad_index < 0) fail("parameter '{}' ({}) has no gradient", name, param_kind_name(e.kind));
  Entry& g = *entries_[size_t(e.grad_index)];
  if (g.tensor.data() == data && g.bytes == 0) return;
  g.memory = Buffer();
  g.bytes = 0;
  g.tensor = Tensor(data, g.tensor.shape(), g.tensor.dtype());
  ++version_;
}

void ParamStore::zero_grads() const {
  for (const auto& e : entries_)
    if (e->kind == ParamKind::grad) e->tensor.zero();
}

}  // namespace onnas
