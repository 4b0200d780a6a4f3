// Replaces every global allocation function of the test executable that includes it
// (include it from exactly one file: each test file is its own executable) so that
// tests can count heap allocations. All forms are replaced — plain, array, nothrow,
// aligned — so every pointer a replaced `new` returns is released by a matching
// replaced `delete` (AddressSanitizer reports a mismatch otherwise, e.g. Catch's own
// `new (std::nothrow)` freed by a replaced `delete`).
//
//   onnas::test::AllocCounter count;      // starts counting
//   program.run(...);
//   CHECK(count.allocations() == 0);
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace onnas::test {

inline std::atomic<int64_t> g_allocations{0};
// Debugging aid: while set, an allocation aborts (run under gdb for its backtrace).
inline std::atomic<bool> g_abort_on_allocation{false};

class AllocCounter {
 public:
  AllocCounter() : start_(g_allocations.load()) {}
  int64_t allocations() const { return g_allocations.load() - start_; }

 private:
  int64_t start_;
};

inline void* counted_alloc(std::size_t n, std::size_t align) {
  ++g_allocations;
  if (g_abort_on_allocation.exchange(false)) std::abort();
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}

inline void* counted_alloc_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted_alloc(n, align)) return p;
  throw std::bad_alloc();
}

}  // namespace onnas::test

void* operator new(std::size_t n) { return onnas::test::counted_alloc_or_throw(n, 0); }
void* operator new[](std::size_t n) { return onnas::test::counted_alloc_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return onnas::test::counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return onnas::test::counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return onnas::test::counted_alloc_or_throw(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return onnas::test::counted_alloc_or_throw(n, std::size_t(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return onnas::test::counted_alloc(n, std::size_t(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return onnas::test::counted_alloc(n, std::size_t(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
