// Attrs: an op's attributes on a graph node — a value of any copyable type (an ops/
// struct, a float, a Shape), like std::any, but knowing the size, alignment, copy and
// destruction of what it holds. That is what a compiled program needs to lay every
// step's attributes into one table of its own (graph/compile.h), instead of one small
// heap block per step: a search step's programs have thousands of steps, and blocks
// allocated among compilation's transients keep the pages of the holes those leave
// resident.
//
//   Attrs a = Conv2dAttrs{.stride = 2};
//   const Conv2dAttrs& c = a.get<Conv2dAttrs>();   // throws onnas::Error on another type
//   const AttrsType* t = a.type();                 // nullptr when empty
//
//   AttrsTable table(AttrsTable::add_size(0, *a.type()));  // a program's: one block, sized first
//   uint32_t at = table.add(a);                             // a copy, aligned for its type
//   attrs_as<Conv2dAttrs>(table.at(at), a.type());
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace onnas::graph {

// What can be done with attributes of one type without naming it.
struct AttrsType {
  const std::type_info* type;
  size_t size, align;
  void (*copy)(void* to, const void* from);  // copy-constructs at `to`
  void (*destroy)(void* at);                  // nullptr when trivially destructible
  // Whether two values are equal (A's operator==); nullptr when A has none.
  bool (*equal)(const void* a, const void* b);
};

template <typename A>
constexpr auto attrs_equal_of() -> bool (*)(const void*, const void*) {
  if constexpr (std::equality_comparable<A>)
    return [](const void* a, const void* b) { return *static_cast<const A*>(a) == *static_cast<const A*>(b); };
  else
    return nullptr;
}

template <typename A>
const AttrsType* attrs_type_of() {
  static const AttrsType t{&typeid(A), sizeof(A), alignof(A),
                           [](void* to, const void* from) { ::new (to) A(*static_cast<const A*>(from)); },
                           std::is_trivially_destructible_v<A> ? nullptr
                                                               : +[](void* at) { static_cast<A*>(at)->~A(); },
                           attrs_equal_of<A>()};
  return &t;
}

// Throws onnas::Error: attributes of type `held` (nullptr: none) read as `wanted`.
[[noreturn]] void fail_attrs_type(const AttrsType* held, const std::type_info& wanted);

// Reads attributes of type A at `data`, checking that `type` is A's.
template <typename A>
const A& attrs_as(const void* data, const AttrsType* type) {
  if (!type || (type->type != &typeid(A) && *type->type != typeid(A))) fail_attrs_type(type, typeid(A));
  return *static_cast<const A*>(data);
}

class Attrs {
 public:
  Attrs() = default;
  template <typename A, typename D = std::decay_t<A>>
    requires(!std::is_same_v<D, Attrs>)
  Attrs(A&& value) : type_(attrs_type_of<D>()) {  // NOLINT: implicit, as std::any's
    data_ = ::operator new(sizeof(D), std::align_val_t(alignof(D)));
    ::new (data_) D(std::forward<A>(value));
  }
  Attrs(const Attrs& other) : type_(other.type_) {
    if (!type_) return;
    data_ = ::operator new(type_->size, std::align_val_t(type_->align));
    type_->copy(data_, other.data_);
  }
  Attrs(Attrs&& other) noexcept : data_(std::exchange(other.data_, nullptr)), type_(std::exchange(other.type_, nullptr)) {}
  Attrs& operator=(Attrs other) noexcept {
    std::swap(data_, other.data_);
    std::swap(type_, other.type_);
    return *this;
  }
  ~Attrs() {
    if (!data_) return;
    if (type_->destroy) type_->destroy(data_);
    ::operator delete(data_, std::align_val_t(type_->align));
  }

  bool has_value() const { return type_ != nullptr; }
  const AttrsType* type() const { return type_; }
  const void* data() const { return data_; }
  template <typename A>
  const A& get() const {
    return attrs_as<A>(data_, type_);
  }

 private:
  void* data_ = nullptr;
  const AttrsType* type_ = nullptr;
};

// Copies of attributes laid end to end in one block, each at an offset aligned for its
// type; the copies that own memory of their own are destroyed with the table.
class AttrsTable {
 public:
  AttrsTable() = default;
  // `bytes`: the sum of the copies' sizes, each rounded up to its alignment (add_size).
  explicit AttrsTable(size_t bytes) : memory_(bytes) {}
  AttrsTable(AttrsTable&& other) noexcept
      : memory_(std::move(other.memory_)), end_(std::exchange(other.end_, 0)), owning_(std::move(other.owning_)) {}
  AttrsTable& operator=(AttrsTable&& other) noexcept;
  ~AttrsTable() { clear(); }

  // Grows a size count by one copy of `a`'s type, as add() will lay it.
  static size_t add_size(size_t bytes, const AttrsType& type) {
    return (bytes + type.align - 1) / type.align * type.align + type.size;
  }
  // Copies `a` (which has a value) into the table; returns its offset. Throws if the
  // table was sized too small.
  uint32_t add(const Attrs& a);
  const void* at(uint32_t offset) const { return static_cast<const std::byte*>(memory_.data()) + offset; }
  size_t bytes() const { return memory_.bytes() + owning_.capacity() * sizeof(Owning); }

 private:
  void clear();
  struct Owning {
    uint32_t offset;
    void (*destroy)(void*);
  };
  Buffer memory_;
  size_t end_ = 0;
  std::vector<Owning> owning_;
};

}  // namespace onnas::graph
