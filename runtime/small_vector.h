// SmallVector<T, N>: a vector of trivially copyable T that keeps up to N elements in
// place and only more than N in a heap block. For op attributes (graph/attrs.h): a
// compiled program copies every step's attributes into one table of its own, and an
// attribute's array held in place is copied with it instead of getting a small heap
// block of its own, made among compilation's transients, whose page then stays resident.
//
//   SmallVector<int64_t, 8> idx{3, 1, 4};
//   idx.push_back(1);
//   for (int64_t i : idx) ...;   std::span<const int64_t> s = idx;
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <type_traits>

namespace onnas {

template <typename T, size_t N>
class SmallVector {
  static_assert(std::is_trivially_copyable_v<T>, "SmallVector copies its elements as bytes");

 public:
  SmallVector() = default;
  SmallVector(std::initializer_list<T> values) { assign(values.begin(), values.size()); }
  template <typename It>
  SmallVector(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }
  SmallVector(std::span<const T> values) { assign(values.data(), values.size()); }  // NOLINT: implicit
  SmallVector(const SmallVector& other) { assign(other.data(), other.size()); }
  SmallVector& operator=(const SmallVector& other) {
    if (this != &other) {
      size_ = 0;
      assign(other.data(), other.size());
    }
    return *this;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T* data() const { return heap_ ? heap_.get() : inline_; }
  T* data() { return heap_ ? heap_.get() : inline_; }
  const T& operator[](size_t i) const { return data()[i]; }
  T& operator[](size_t i) { return data()[i]; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  operator std::span<const T>() const { return {data(), size_}; }  // NOLINT: implicit, as a vector's
  friend bool operator==(const SmallVector& a, const SmallVector& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }

  void push_back(const T& value) {
    if (size_ == capacity_) grow(std::max<size_t>(2 * capacity_, N + 1));
    data()[size_++] = value;
  }

 private:
  void assign(const T* values, size_t n) {
    if (n > capacity_) grow(n);
    if (n) std::memcpy(data(), values, n * sizeof(T));
    size_ = n;
  }
  void grow(size_t capacity) {
    std::unique_ptr<T[]> bigger(new T[capacity]);
    if (size_) std::memcpy(bigger.get(), data(), size_ * sizeof(T));
    heap_ = std::move(bigger);
    capacity_ = capacity;
  }

  T inline_[N] = {};
  std::unique_ptr<T[]> heap_;  // when more than N
  size_t size_ = 0, capacity_ = N;
};

}  // namespace onnas
