// runtime/: release_free_heap (heap.h).
#include "runtime/heap.h"

#include "runtime/tensor.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace onnas {

void release_free_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void return_large_blocks_to_system() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
#endif
}

size_t dynamic_memory_bytes() {
  size_t heap = 0;
#if defined(__GLIBC__)
  const struct mallinfo2 m = mallinfo2();  // every malloc arena, and malloc's mapped blocks
  heap = m.uordblks + m.hblkhd;
#endif
  return heap + Buffer::mapped_bytes();
}

}  // namespace onnas
