// Threads: one oneTBB task_arena whose width the user sets (--threads). Kernels
// parallelize through parallel_for, which splits [begin, end) into chunks whose
// boundaries depend only on the range and the grain — never on the thread count — so
// a kernel that reduces per chunk and combines chunks in order is bit-for-bit
// repeatable at any thread count.
//
//   onnas::set_num_threads(2);
//   onnas::parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) { ... });
#pragma once

#include <cstdint>
#include <functional>

namespace onnas {

// Sets the width of the arena all kernels run in; n >= 1. Default: all cores.
void set_num_threads(int n);
int num_threads();

namespace detail {
void parallel_for_impl(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
}

// Calls fn(lo, hi) over disjoint chunks covering [begin, end), each at most `grain`
// long (chunk boundaries are a function of begin, end and grain alone).
template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  if (end - begin <= grain || num_threads() == 1) {
    // Same chunking as the parallel path, so per-chunk reductions agree exactly.
    for (int64_t lo = begin; lo < end;) {
      int64_t hi = lo + grain < end ? lo + grain : end;
      fn(lo, hi);
      lo = hi;
    }
    return;
  }
  detail::parallel_for_impl(begin, end, grain, std::function<void(int64_t, int64_t)>(std::ref(fn)));
}

}  // namespace onnas
