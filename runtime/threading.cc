#include "runtime/threading.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <memory>
#include <mutex>
#include <thread>

#include "runtime/error.h"

// Debian's libtbb is not built with ThreadSanitizer, so TSan cannot see the
// happens-before edges that oneTBB's scheduler gives parallel_for, and reports the
// loop's own context as racy. Under TSan (CI's build-tsan/) these mark the edges by
// hand: everything before parallel_for happens before each chunk (through every copy
// of the loop body oneTBB makes), and each chunk before parallel_for returns. Chunks
// stay unordered among themselves, so a race between two chunks is still reported.
// Elsewhere they compile to nothing.
#if defined(__SANITIZE_THREAD__)
#define ONNAS_TSAN_ANNOTATE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ONNAS_TSAN_ANNOTATE 1
#endif
#endif
#ifdef ONNAS_TSAN_ANNOTATE
#include <sanitizer/tsan_interface.h>
#define ONNAS_HAPPENS_BEFORE(addr) __tsan_release(const_cast<void*>(static_cast<const void*>(addr)))
#define ONNAS_HAPPENS_AFTER(addr) __tsan_acquire(const_cast<void*>(static_cast<const void*>(addr)))
#else
#define ONNAS_HAPPENS_BEFORE(addr) static_cast<void>(addr)
#define ONNAS_HAPPENS_AFTER(addr) static_cast<void>(addr)
#endif

namespace onnas {
namespace {

struct ThreadArena {
  int width = 0;
  std::unique_ptr<tbb::task_arena> arena;
};

ThreadArena& thread_arena() {
  static ThreadArena a;
  return a;
}

std::mutex& arena_mutex() {
  static std::mutex m;
  return m;
}

tbb::task_arena& current_arena() {
  ThreadArena& a = thread_arena();
  if (!a.arena) {
    std::lock_guard lock(arena_mutex());
    if (!a.arena) {
      int n = int(std::thread::hardware_concurrency());
      a.width = n > 0 ? n : 1;
      a.arena = std::make_unique<tbb::task_arena>(a.width);
    }
  }
  return *a.arena;
}

}  // namespace

void set_num_threads(int n) {
  if (n < 1) fail("thread count must be at least 1 (got {})", n);
  std::lock_guard lock(arena_mutex());
  ThreadArena& a = thread_arena();
  a.width = n;
  a.arena = std::make_unique<tbb::task_arena>(n);
}

int num_threads() {
  current_arena();
  return thread_arena().width;
}

namespace detail {

// The loop's context, on the caller's stack for the whole parallel_for.
struct Loop {
  int64_t begin, end, grain;
  const std::function<void(int64_t, int64_t)>* fn;
  char finished = 0;  // address for the TSan annotation: each chunk before the return
};

// parallel_for's body. oneTBB copies it into every task it spawns or splits off,
// inside the scheduler, after anything annotated before the call; so each copy marks
// its own address once written (and its source's before reading it), and a chunk
// reads its copy only after that mark. The scheduler also reuses a finished task's
// memory for a new one: a chunk marks its copy's address when done with it, and a
// new copy at that address waits for the mark before writing.
class ChunkBody {
 public:
  explicit ChunkBody(const Loop* loop) : loop_(loop) { ONNAS_HAPPENS_BEFORE(this); }
  ChunkBody(const ChunkBody& other) {
    ONNAS_HAPPENS_AFTER(this);
    ONNAS_HAPPENS_AFTER(&other);
    loop_ = other.loop_;
    ONNAS_HAPPENS_BEFORE(this);
  }
  ChunkBody& operator=(const ChunkBody&) = delete;

  void operator()(const tbb::blocked_range<int64_t>& r) const {
    ONNAS_HAPPENS_AFTER(this);
    const Loop& l = *loop_;
    for (int64_t c = r.begin(); c < r.end(); ++c) {
      const int64_t lo = l.begin + c * l.grain;
      const int64_t hi = lo + l.grain < l.end ? lo + l.grain : l.end;
      (*l.fn)(lo, hi);
    }
    ONNAS_HAPPENS_BEFORE(&l.finished);
    ONNAS_HAPPENS_BEFORE(this);
  }

 private:
  const Loop* loop_;
};

// Chunks are [begin + i*grain, begin + (i+1)*grain): we iterate over chunk indices with
// grain 1 so TBB's splitting cannot change the chunk boundaries.
void parallel_for_impl(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t chunks = (end - begin + grain - 1) / grain;
  Loop loop{begin, end, grain, &fn};
  const ChunkBody body(&loop);  // after `loop` is written
  current_arena().execute(
      [&] { tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1), body, tbb::simple_partitioner()); });
  ONNAS_HAPPENS_AFTER(&loop.finished);
}

}  // namespace detail
}  // namespace onnas
