// One static plan per search (issue 16): 200 sampled steps of a Searcher in each
// sampled memory mode make no heap allocation, counted from the very first step after
// the Searcher is built (no warm-up run), and the arena, the handed-on storage and
// the gradient block keep the sizes planned before the first step. Samples change
// every step, so a step that compiled, grew a buffer or resized a table would show.
// Under emulation (the aarch64 build under QEMU, where a step is ~30x slower) 40 steps
// per mode: the same paths, a smaller share of the sample space.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>

#include "nas/search.h"
#include "nas/search_space.h"
#include "tests/nas/spaces.h"
#include "runtime/rng.h"
#include "runtime/threading.h"
#include "tests/alloc_counter.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

using test_spaces::small_space;

// Random images and labels, written in place so the batch buffers never move.
void fill(Rng& rng, Tensor& x, Tensor& y, int classes) {
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
  for (int64_t i = 0; i < y.numel(); ++i) y.i32()[i] = int32_t(rng.uniform_int(classes));
}

}  // namespace

TEST_CASE("200 sampled search steps allocate nothing and keep the planned sizes") {
  const int64_t steps = ONNAS_EMULATED ? 40 : 200;
  // The thread pool's workers exist before counting (creating a thread allocates).
  parallel_for(0, 64, 1, [](int64_t, int64_t) {});
  const SearchSpace space = small_space();
  const int64_t batch = 8;
  struct Case {
    const char* name;
    StepConfig step;
  };
  const Case cases[] = {
      {"ops", {.mode = Mode::ops, .k_grad = 2}},
      {"ops+pairs", {.mode = Mode::ops_pairs, .k_grad = 2, .split = 2}},
      {"ops+pairs+sbs recompute", {.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::recompute, .k_grad = 2, .split = 2}},
      {"ops+pairs+sbs checkpoint", {.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::checkpoint, .k_grad = 1}},
      // One image per micro-batch: single-image convolutions run the parallel SGEMM,
      // which packs into their planned workspace.
      {"ops+pairs, one image per micro-batch", {.mode = Mode::ops_pairs, .k_grad = 2, .split = 8}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    SearchOptions options;
    options.batch = batch;
    options.step = c.step;
    ParamStore params;
    Searcher searcher(space, options, params, 7);
    searcher.set_progress(0, steps);
    Buffer xb(size_t(batch * space.in_channels * space.height * space.width) * 4), yb(size_t(batch) * 4);
    Buffer vxb(xb.bytes()), vyb(yb.bytes());
    Tensor x(xb.data(), Shape{batch, space.in_channels, space.height, space.width});
    Tensor y(yb.data(), Shape{batch}, DType::i32);
    Tensor vx(vxb.data(), x.shape()), vy(vyb.data(), Shape{batch}, DType::i32);
    Rng rng(3);
    const size_t arena = searcher.arena_bytes(), handed = searcher.handed_bytes(), grads = searcher.grad_bytes();
    const size_t param_bytes = params.bytes();
    REQUIRE(grads > 0);  // the sampled modes keep weight gradients in the block

    int64_t allocating_steps = 0, first_allocating = -1, allocations = 0;
    for (int64_t s = 0; s < steps; ++s) {
      fill(rng, x, y, space.classes);
      fill(rng, vx, vy, space.classes);
      test::AllocCounter count;
      // ONNAS_ABORT_ON_ALLOCATION=1 under gdb: the backtrace of the first allocation.
      if (std::getenv("ONNAS_ABORT_ON_ALLOCATION")) test::g_abort_on_allocation = true;
      const StepResult r = searcher.step(x, y, vx, vy);
      test::g_abort_on_allocation = false;
      const int64_t n = count.allocations();
      REQUIRE(std::isfinite(r.weight_loss));
      if (n > 0) {
        ++allocating_steps;
        allocations += n;
        if (first_allocating < 0) first_allocating = s;
      }
    }
    CHECK(searcher.next_step() == steps);
    INFO("first allocating step " << first_allocating << ", " << allocations << " allocations in all");
    CHECK(allocating_steps == 0);
    CHECK(searcher.arena_bytes() == arena);
    CHECK(searcher.handed_bytes() == handed);
    CHECK(searcher.grad_bytes() == grads);
    CHECK(params.bytes() == param_bytes);
  }
}
