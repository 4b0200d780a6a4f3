#include "runtime/tensor.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <utility>

namespace onnas {

namespace {

// Blocks of this size or more are mapped from the system directly: their pages are zero
// and become resident only when first written, so an arena reserved before set-up is
// done (compiling, estimating) takes no memory until a step runs in it, and the pages a
// plan reserves but a run never touches stay out of the resident set.
constexpr size_t kMapAtLeast = size_t(64) << 10;

size_t rounded_size(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

std::atomic<size_t> g_mapped{0};

}  // namespace

Buffer::Buffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const size_t rounded = rounded_size(bytes);
  if (rounded >= kMapAtLeast) {
    void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      fail("out of memory: cannot map {} bytes ({:.2f} GiB)", bytes, double(bytes) / double(1u << 30));
    data_ = p;
    g_mapped.fetch_add(rounded, std::memory_order_relaxed);
    return;
  }
  data_ = std::aligned_alloc(kAlignment, rounded);
  if (!data_) fail("out of memory: cannot allocate {} bytes ({:.2f} GiB)", bytes, double(bytes) / double(1u << 30));
  std::memset(data_, 0, rounded);
}

void Buffer::release() {
  if (!data_) return;
  const size_t rounded = rounded_size(bytes_);
  if (rounded >= kMapAtLeast) {
    munmap(data_, rounded);
    g_mapped.fetch_sub(rounded, std::memory_order_relaxed);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  bytes_ = 0;
}

void Buffer::discard_pages() {
  const size_t rounded = rounded_size(bytes_);
  if (data_ && rounded >= kMapAtLeast) madvise(data_, rounded, MADV_DONTNEED);
}

size_t Buffer::mapped_bytes() { return g_mapped.load(std::memory_order_relaxed); }

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

}  // namespace onnas
