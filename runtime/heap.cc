// runtime/: release_free_heap (heap.h).
#include "runtime/heap.h"

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

}  // namespace onnas
