#include "runtime/shape.h"

#include "runtime/error.h"

namespace onnas {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::i32: return "i32";
    case DType::u8: return "u8";
    case DType::bf16: return "bf16";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const int64_t> dims) {
  if (dims.size() > size_t(kMaxRank)) fail("shape of rank {} exceeds the maximum rank {}", dims.size(), kMaxRank);
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) fail("shape dimension {} is negative ({})", i, dims[i]);
    dims_[i] = dims[i];
  }
  rank_ = int(dims.size());
}

int64_t Shape::numel() const {
  // Checked: a shape derived from a file (a meta cell's space, a header) must not wrap
  // into a small or negative count that an allocation then trusts. Below 2^60 elements,
  // numel times any element size (at most 8 bytes) fits in 64 bits as well.
  constexpr int64_t kMaxElements = int64_t(1) << 60;
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i)
    if (__builtin_mul_overflow(n, dims_[i], &n) || n > kMaxElements) [[unlikely]]
      fail("shape {} has more elements than fit in memory", str());
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) s += fmt::format("{}{}", i ? ", " : "", dims_[i]);
  return s + "]";
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != other.dims_[i]) return false;
  return true;
}

}  // namespace onnas
