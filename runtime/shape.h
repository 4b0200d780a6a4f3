// Shape and DType: what a tensor is, without its memory.
//
//   Shape s{32, 16, 28, 28};   // N, C, H, W
//   s.numel() == 401408; s.rank() == 4; s[1] == 16; s.str() == "[32, 16, 28, 28]"
//
// A Shape holds up to kMaxRank dimensions inline (no heap), so shapes can be copied
// freely on the hot path.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace onnas {

// u8 holds small indices (a max pool's window offsets), never parameters or feeds.
// bf16 (bfloat16: the upper half of an f32, runtime/bf16.h) holds optimizer state that
// can do with 8 bits of precision (Adam's second moment with --optimizer adam-bf16);
// kernels never read it.
enum class DType : uint8_t { f32, i32, u8, bf16 };

constexpr size_t dtype_size(DType t) { return t == DType::u8 ? 1 : t == DType::bf16 ? 2 : 4; }
const char* dtype_name(DType t);

class Shape {
 public:
  static constexpr int kMaxRank = 6;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t numel() const;  // throws onnas::Error beyond 2^60 elements (so bytes never wrap)
  std::span<const int64_t> dims() const { return {dims_.data(), size_t(rank_)}; }
  std::string str() const;

  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace onnas
