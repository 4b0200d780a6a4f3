// Tensor: a non-owning view of contiguous (NCHW) memory with a shape and a dtype.
// Buffer: 64-byte aligned owned memory. Arena: one Buffer that a memory plan carves
// into tensors at fixed offsets.
//
//   Buffer b(Shape{2, 3}.numel() * 4);
//   Tensor t(b.data(), Shape{2, 3});     // f32 view
//   t.f32()[0] = 1.0f;
//
//   Arena arena(plan_bytes);
//   Tensor act = arena.view(offset, Shape{32, 16, 28, 28});
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "runtime/error.h"
#include "runtime/shape.h"

namespace onnas {

constexpr size_t kAlignment = 64;  // a cache line, and one AVX-512 register

class Tensor {
 public:
  Tensor() = default;
  Tensor(void* data, const Shape& shape, DType dtype = DType::f32) : data_(data), shape_(shape), dtype_(dtype) {}

  void* data() const { return data_; }
  float* f32() const {
    ONNAS_DCHECK(dtype_ == DType::f32, "tensor is {}, not f32", dtype_name(dtype_));
    return static_cast<float*>(data_);
  }
  int32_t* i32() const {
    ONNAS_DCHECK(dtype_ == DType::i32, "tensor is {}, not i32", dtype_name(dtype_));
    return static_cast<int32_t*>(data_);
  }
  uint8_t* u8() const {
    ONNAS_DCHECK(dtype_ == DType::u8, "tensor is {}, not u8", dtype_name(dtype_));
    return static_cast<uint8_t*>(data_);
  }
  uint16_t* bf16() const {  // the raw bits; runtime/bf16.h converts
    ONNAS_DCHECK(dtype_ == DType::bf16, "tensor is {}, not bf16", dtype_name(dtype_));
    return static_cast<uint16_t*>(data_);
  }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  int64_t numel() const { return shape_.numel(); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr; }

  void zero() const {
    if (data_) std::memset(data_, 0, bytes());
  }

 private:
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
};

// 64-byte aligned owned memory, zero-filled. Move-only. Blocks of 64 KiB or more are
// mapped from the system: resident only once written.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // Bytes of the blocks all Buffers have mapped from the system and still hold.
  static size_t mapped_bytes();
  // Gives a mapped block's pages back to the system (madvise DONTNEED: they become
  // resident again when written); a small block stays as it is. The contents are lost
  // (zero on Linux; unchanged where the hint is ignored, as under QEMU's user mode). For
  // memory whose contents are dead while something else runs (compiling between runs).
  void discard_pages();

 private:
  void release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// One block of memory sized by a plan; tensors are views at planned offsets.
class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t bytes) : buffer_(bytes) {}

  size_t bytes() const { return buffer_.bytes(); }
  std::byte* base() const { return static_cast<std::byte*>(buffer_.data()); }
  // Between runs, when no value in it is needed any more: its pages leave the resident
  // set until the next run writes them (Buffer::discard_pages).
  void discard_pages() { buffer_.discard_pages(); }

  // A view at `offset`; bounds-checked in debug builds.
  Tensor view(size_t offset, const Shape& shape, DType dtype = DType::f32) const {
    ONNAS_DCHECK(offset + size_t(shape.numel()) * dtype_size(dtype) <= bytes(),
                 "arena view [{}, {}) exceeds the arena of {} bytes", offset,
                 offset + size_t(shape.numel()) * dtype_size(dtype), bytes());
    return Tensor(base() + offset, shape, dtype);
  }

 private:
  Buffer buffer_;
};

}  // namespace onnas
