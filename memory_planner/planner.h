// The static memory planner: given buffers that are only sizes and lifetimes, give each
// one an offset in a single arena so that no two buffers live at the same step share a
// byte, and keep the arena small. It knows nothing of tensors or graphs (a liveness
// pass in graph/ is the only bridge), as in TensorFlow Lite Micro's planner.
//
//   std::vector<BufferRequest> buffers = {
//       {.name = "conv1.out", .bytes = 4096, .first_step = 0, .last_step = 2},
//       {.name = "relu1.out", .bytes = 4096, .first_step = 1, .last_step = 3},
//       {.name = "conv2.out", .bytes = 1024, .first_step = 3, .last_step = 4},
//   };
//   Plan plan = plan_memory(buffers);          // Strategy::best
//   check_plan(buffers, plan);                 // throws if two live buffers overlap
//   // plan.offsets = {0, 4096, 0}, plan.arena_bytes = 8192 == plan.lower_bound_bytes
//
// Words: a buffer lives over the steps first_step..last_step, both inclusive; two
// buffers "overlap in time" when they share a step, and then their byte ranges
// [offset, offset + bytes) must be disjoint. Every offset is a multiple of the buffer's
// alignment. The arena is the largest offset + bytes.
//
// In-place hints: `may_share_with = j` says this buffer may take over buffer j's
// storage (an in-place op). It is valid when j.last_step == this.first_step and
// this.bytes <= j.bytes. Every strategy except `naive` honours each valid hint by
// fusing the two into one block of j.bytes that lives from j.first_step to this
// buffer's last_step (chains a -> b -> c fuse likewise), and plans the blocks; a block
// reserves its whole size for its whole life, so honouring a hint can never put a
// third buffer on top of it. A hint is ignored (the buffer is planned on its own) when
// it is invalid, when j is already taken over by another buffer, or when j lives one
// step only and itself took over a buffer (the three would share a step).
//
// The lower bound is the largest sum of bytes live at any one step (counting a fused
// block once, at its full size): no plan that honours the hints can use less.
//
// Strategies (every one places blocks in some order, each at an offset that does not
// collide with the blocks already placed that overlap it in time; they differ in the
// order and in which free gap they take):
//   - naive: no reuse; offsets are a running sum in input order. arena == sum of bytes
//     (plus alignment padding). The reference the others are measured against.
//   - greedy_by_size: TensorFlow Lite Micro's GreedyMemoryPlanner. Largest block first
//     (ties: earlier first step, then input order); each goes to the lowest aligned
//     offset where it fits between the blocks already placed that overlap it in time.
//   - greedy_by_breadth: the "breadth" of a step is the sum of bytes live there. Order
//     blocks by the largest breadth over their lifetime (the most crowded step they
//     take part in), then by size; place as greedy_by_size does (lowest offset).
//     After Pisarchyk & Lee, "Efficient Memory Management for Deep Neural Net
//     Inference" (2020), section 5, "greedy by breadth".
//   - best_fit: an allocator replayed in time order: walk the steps, free the blocks
//     that died, and give each new block (largest first within a step) the smallest
//     free hole it fits in; if none fits, grow the top. O(n log n), blind to the
//     future, so it shines on chains and loses on long-lived buffers.
//   - size_best_gap: Pisarchyk & Lee (2020), section 5.1, "greedy by size for offset
//     calculation" (TensorFlow Lite GPU delegate): largest block first, but into the
//     smallest gap between the time-overlapping placed blocks that fits it (not the
//     lowest), else on top of them all. Keeps big holes for big buffers.
//   - breadth_best_gap: the breadth order of greedy_by_breadth with the smallest-gap
//     placement of size_best_gap (Pisarchyk & Lee's greedy by breadth as published).
//   - area_lowest / area_best_gap: blocks ordered by their area in the timeline
//     (bytes x steps alive, largest first; ties as greedy_by_size), placed at the
//     lowest offset or into the smallest gap. Long-lived mid-sized buffers (saved
//     activations) go in before short large scratch, which the size orders miss on
//     some micro-batched step-by-step programs.
//   - best (the default): runs every strategy above, naive last, and keeps the smallest
//     arena (ties: the first in that order). The strategy that won is in Plan::strategy.
//
// Cost: placed blocks live in a segment tree over the steps whose nodes hold merged
// address ranges, so a placement looks at O(log T) small range sets instead of the k
// blocks it overlaps in time (k is in the thousands for a training step: saved
// activations all meet at the turn from forward to backward). best_fit is O(n log n).
// Measured on 10,000 training-step buffers (bench/planner): about 9 ms CPU per
// size/breadth strategy, 2.4 ms for best_fit, 7 ms for best when the first strategy
// reaches the lower bound (it then stops).
//
// Errors: invalid input throws std::invalid_argument with one sentence naming the
// buffer (this layer depends on nothing of ours, so not onnas::Error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace onnas::planner {

struct BufferRequest {
  std::string name;            // labels for dumps only; the planner never reads them
  size_t bytes = 0;
  int32_t first_step = 0;
  int32_t last_step = 0;       // inclusive
  size_t alignment = 64;       // a power of two
  int32_t may_share_with = -1; // index of a buffer whose storage this one may take over
  std::string op;              // label: the op that produces it
  std::string kind;            // label: "activation", "gradient", "workspace", "saved", ...
  int32_t choice = -1;         // a run-time choice this buffer exists under (memory_planner/choices.h), or -1
};

// Heap bytes a buffer list holds (the requests and their labels).
size_t heap_bytes(std::span<const BufferRequest> buffers);

enum class Strategy {
  naive,
  greedy_by_size,
  greedy_by_breadth,
  best_fit,
  size_best_gap,
  breadth_best_gap,
  area_lowest,
  area_best_gap,
  best
};

// Every concrete strategy, in the order `best` tries them (naive last, so it wins only
// when it is strictly smaller).
inline constexpr Strategy kConcreteStrategies[] = {Strategy::greedy_by_size, Strategy::greedy_by_breadth,
                                                   Strategy::best_fit,       Strategy::size_best_gap,
                                                   Strategy::breadth_best_gap, Strategy::area_lowest,
                                                   Strategy::area_best_gap,    Strategy::naive};

std::string_view strategy_name(Strategy strategy);
// The strategy with that name ("greedy_by_size", "best", ...), or nullopt.
std::optional<Strategy> strategy_from_name(std::string_view name);

// What a plan says about a group of run-time choices (choices.h); Plan::groups.
struct GroupRegion {
  size_t offset = 0;     // from the base of the parent choice (or of the arena, at the top)
  size_t bytes = 0;      // its `capacity` largest choices together
  int32_t first_step = 0, last_step = -1;  // last < first: nothing under it has storage
  size_t alignment = 64;
};

struct Plan {
  std::vector<size_t> offsets;  // one per buffer, in input order
  size_t arena_bytes = 0;
  size_t lower_bound_bytes = 0;
  Strategy strategy = Strategy::best;  // the strategy that produced the offsets (never `best`)
  int32_t peak_step = 0;               // a step where the live bytes reach the lower bound
  // With run-time choices (choices.h): each group's region and each choice's size.
  std::vector<GroupRegion> groups;
  std::vector<size_t> choice_bytes;
};

// Plans the buffers. Throws std::invalid_argument on invalid input (see validate) and on
// a buffer under a choice (those are planned by plan_with_choices, choices.h).
Plan plan_memory(std::span<const BufferRequest> buffers, Strategy strategy = Strategy::best);

// The largest sum of bytes live at any one step (fused in-place blocks counted once).
size_t lower_bound(std::span<const BufferRequest> buffers);

// Throws std::invalid_argument naming the first bad buffer: last_step < first_step, a
// negative step, an alignment that is not a power of two, may_share_with out of range.
void validate(std::span<const BufferRequest> buffers);

// The first problem with the plan, in words, or nullopt if the plan is sound: a pair of
// buffers that overlap in time and whose byte ranges intersect (a valid in-place pair
// at the same offset is allowed), an offset not a multiple of its alignment, a buffer
// that ends past arena_bytes, or an offset count that does not match. O(n log n).
std::optional<std::string> find_overlap(std::span<const BufferRequest> buffers, const Plan& plan);

// Throws std::invalid_argument with find_overlap's description if there is one.
void check_plan(std::span<const BufferRequest> buffers, const Plan& plan);

}  // namespace onnas::planner
