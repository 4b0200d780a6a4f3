// The strategies of planner.h. Every strategy works on "blocks": a buffer, or a chain
// of buffers fused by honoured in-place hints, which reserves its root's bytes for the
// chain's whole life. The preparation (validation, fusing, step compression, breadth)
// is shared, so `best` pays for it once.
#include "memory_planner/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <map>
#include <numeric>
#include <queue>
#include <set>
#include <stdexcept>
#include <utility>

namespace onnas::planner {
namespace {

size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) & ~(alignment - 1); }

struct Block {
  size_t bytes;
  int32_t first;
  int32_t last;
  size_t alignment;
};

// Everything the strategies share, computed once per plan_memory call.
struct Problem {
  std::vector<Block> blocks;
  std::vector<uint32_t> block_of;  // buffer index -> block index
  size_t lower_bound = 0;
  int32_t peak_step = 0;
  // Live sums change only where a block starts, so the distinct first steps are the
  // only steps worth looking at: block b lives over steps[first_index[b]..last_index[b]].
  std::vector<int32_t> steps;
  std::vector<uint32_t> first_index, last_index;
  std::vector<size_t> max_breadth;  // per block: the largest live sum over its lifetime
  std::vector<uint32_t> by_first;   // block ids sorted by (first step, id)
};

std::string label(std::span<const BufferRequest> buffers, size_t i) {
  return fmt::format("buffer {} ('{}')", i, buffers[i].name);
}

// The static conditions for "buffer j may take over buffer t's storage".
bool hint_is_valid(std::span<const BufferRequest> buffers, size_t j) {
  int32_t t = buffers[j].may_share_with;
  if (t < 0 || size_t(t) >= buffers.size() || size_t(t) == j) return false;
  const BufferRequest& target = buffers[size_t(t)];
  return target.last_step == buffers[j].first_step && buffers[j].bytes <= target.bytes;
}

// An iterative max segment tree: range maximum over a fixed array.
class MaxTree {
 public:
  explicit MaxTree(const std::vector<size_t>& values) {
    size_ = std::bit_ceil(std::max<size_t>(values.size(), 1));
    tree_.assign(2 * size_, 0);
    std::copy(values.begin(), values.end(), tree_.begin() + ptrdiff_t(size_));
    for (size_t i = size_ - 1; i >= 1; --i) tree_[i] = std::max(tree_[2 * i], tree_[2 * i + 1]);
  }
  // max over [lo, hi)
  size_t query(size_t lo, size_t hi) const {
    size_t best = 0;
    for (lo += size_, hi += size_; lo < hi; lo >>= 1, hi >>= 1) {
      if (lo & 1) best = std::max(best, tree_[lo++]);
      if (hi & 1) best = std::max(best, tree_[--hi]);
    }
    return best;
  }

 private:
  size_t size_;
  std::vector<size_t> tree_;
};

Problem prepare(std::span<const BufferRequest> buffers) {
  validate(buffers);
  const size_t n = buffers.size();
  Problem p;

  // Fuse in-place chains: parent[j] = the buffer whose storage j takes over.
  std::vector<int32_t> parent(n, -1);
  std::vector<bool> taken(n, false);
  for (size_t j = 0; j < n; ++j) {
    if (!hint_is_valid(buffers, j)) continue;
    size_t t = size_t(buffers[j].may_share_with);
    const BufferRequest& target = buffers[t];
    // A one-step target that itself took over a buffer would put three on one step.
    if (taken[t] || (target.first_step == target.last_step && target.may_share_with >= 0)) continue;
    taken[t] = true;
    parent[j] = int32_t(t);
  }
  // Roots get blocks; every chain member gets its root's block, which lives until the
  // chain's end and is aligned for every member.
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  p.block_of.assign(n, kNone);
  for (size_t i = 0; i < n; ++i) {
    if (parent[i] >= 0) continue;
    p.block_of[i] = uint32_t(p.blocks.size());
    p.blocks.push_back({buffers[i].bytes, buffers[i].first_step, buffers[i].last_step, buffers[i].alignment});
  }
  for (size_t i = 0; i < n; ++i) {
    if (p.block_of[i] != kNone) continue;
    size_t r = i;
    while (p.block_of[r] == kNone) r = size_t(parent[r]);  // ends: chains are acyclic (see planner.h)
    uint32_t block = p.block_of[r];
    for (size_t k = i; p.block_of[k] == kNone; k = size_t(parent[k])) {
      p.block_of[k] = block;
      p.blocks[block].last = std::max(p.blocks[block].last, buffers[k].last_step);
      p.blocks[block].alignment = std::max(p.blocks[block].alignment, buffers[k].alignment);
    }
  }

  const size_t m = p.blocks.size();
  p.by_first.resize(m);
  std::iota(p.by_first.begin(), p.by_first.end(), 0u);
  std::sort(p.by_first.begin(), p.by_first.end(), [&](uint32_t a, uint32_t b) {
    return p.blocks[a].first != p.blocks[b].first ? p.blocks[a].first < p.blocks[b].first : a < b;
  });
  for (uint32_t b : p.by_first)
    if (p.steps.empty() || p.steps.back() != p.blocks[b].first) p.steps.push_back(p.blocks[b].first);
  // step -> compressed index of the last distinct first step <= it. A table when the
  // steps are dense enough (they are: steps are op indices), binary search otherwise.
  p.first_index.resize(m);
  p.last_index.resize(m);
  int32_t max_last = 0;
  for (const Block& b : p.blocks) max_last = std::max(max_last, b.last);
  if (m > 0 && size_t(max_last) <= 8 * m + 1024) {
    std::vector<uint32_t> at(size_t(max_last) + 1, 0);
    for (size_t k = 0, s = 0; s < at.size(); ++s) {
      while (k + 1 < p.steps.size() && p.steps[k + 1] <= int32_t(s)) ++k;
      at[s] = uint32_t(k);
    }
    for (size_t b = 0; b < m; ++b) {
      p.first_index[b] = at[size_t(p.blocks[b].first)];
      p.last_index[b] = at[size_t(p.blocks[b].last)];
    }
  } else {
    for (size_t b = 0; b < m; ++b) {
      p.first_index[b] = uint32_t(std::lower_bound(p.steps.begin(), p.steps.end(), p.blocks[b].first) - p.steps.begin());
      p.last_index[b] =
          uint32_t(std::upper_bound(p.steps.begin(), p.steps.end(), p.blocks[b].last) - p.steps.begin()) - 1;
    }
  }
  std::vector<int64_t> delta(p.steps.size() + 1, 0);
  for (size_t b = 0; b < m; ++b) {
    delta[p.first_index[b]] += int64_t(p.blocks[b].bytes);
    delta[p.last_index[b] + 1] -= int64_t(p.blocks[b].bytes);
  }
  std::vector<size_t> breadth(p.steps.size());
  int64_t live = 0;
  for (size_t k = 0; k < p.steps.size(); ++k) {
    live += delta[k];
    breadth[k] = size_t(live);
    if (breadth[k] > p.lower_bound) {
      p.lower_bound = breadth[k];
      p.peak_step = p.steps[k];
    }
  }
  if (!p.steps.empty() && p.lower_bound == 0) p.peak_step = p.steps[0];
  MaxTree tree(breadth);
  p.max_breadth.resize(m);
  for (size_t b = 0; b < m; ++b)
    p.max_breadth[b] = tree.query(p.first_index[b], p.last_index[b] + 1);
  return p;
}

// Occupied addresses as sorted, disjoint, non-touching ranges [start, end). Only ever
// grows; adjacent ranges merge, so a densely packed region is one entry.
class RangeSet {
 public:
  using Range = std::pair<size_t, size_t>;

  void add(size_t start, size_t end) {
    auto lo = std::partition_point(ranges_.begin(), ranges_.end(), [&](const Range& r) { return r.second < start; });
    auto hi = lo;
    for (; hi != ranges_.end() && hi->first <= end; ++hi) {
      start = std::min(start, hi->first);
      end = std::max(end, hi->second);
    }
    if (lo == hi) {
      ranges_.insert(lo, {start, end});
    } else {
      *lo = {start, end};
      ranges_.erase(lo + 1, hi);
    }
  }
  // The first range that ends after x, or nullptr.
  const Range* first_ending_after(size_t x) const {
    auto it = std::partition_point(ranges_.begin(), ranges_.end(), [&](const Range& r) { return r.second <= x; });
    return it == ranges_.end() ? nullptr : &*it;
  }
  bool empty() const { return ranges_.empty(); }
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::vector<Range> ranges_;
};

// Where the placed blocks are, in time and address: a segment tree over the compressed
// steps. A block is stored at the O(log T) nodes that exactly cover its lifetime
// (`here`) and merged into `below` of those nodes and all their ancestors. The blocks
// that overlap a lifetime [f, l] are then exactly: `below` of the nodes covering
// [f, l], plus `here` of those nodes' ancestors. So a placement looks at O(log T) merged
// range sets, never at the k blocks it overlaps one by one; densely packed blocks have
// merged into a few ranges.
class SpaceTime {
 public:
  explicit SpaceTime(size_t steps)
      : leaves_(std::bit_ceil(std::max<size_t>(steps, 1))), here_(2 * leaves_), below_(2 * leaves_),
        stamp_(2 * leaves_, 0) {}

  // Compressed steps lo..hi inclusive.
  void insert(size_t lo, size_t hi, size_t start, size_t end) {
    cover(lo, hi);
    ++epoch_;
    for (size_t node : covering_) {
      here_[node].add(start, end);
      for (size_t a = node; a >= 1 && stamp_[a] != epoch_; a >>= 1) {
        stamp_[a] = epoch_;
        below_[a].add(start, end);
      }
    }
  }

  // The range sets whose union is everything placed that overlaps lo..hi.
  const std::vector<const RangeSet*>& overlapping(size_t lo, size_t hi) {
    cover(lo, hi);
    sets_.clear();
    ++epoch_;
    for (size_t node : covering_) stamp_[node] = epoch_;
    for (size_t node : covering_) {
      if (!below_[node].empty()) sets_.push_back(&below_[node]);
      for (size_t a = node >> 1; a >= 1 && stamp_[a] != epoch_; a >>= 1) {
        stamp_[a] = epoch_;
        if (!here_[a].empty()) sets_.push_back(&here_[a]);
      }
    }
    return sets_;
  }

 private:
  void cover(size_t lo, size_t hi) {
    covering_.clear();
    for (size_t l = lo + leaves_, r = hi + leaves_ + 1; l < r; l >>= 1, r >>= 1) {
      if (l & 1) covering_.push_back(l++);
      if (r & 1) covering_.push_back(--r);
    }
  }

  size_t leaves_;
  std::vector<RangeSet> here_, below_;
  std::vector<uint32_t> stamp_;
  uint32_t epoch_ = 0;
  std::vector<size_t> covering_;
  std::vector<const RangeSet*> sets_;
};

enum class Gap { lowest, smallest };

struct Placement {
  std::vector<size_t> block_offset;
  size_t arena = 0;
};

// The lowest aligned offset where `bytes` fits clear of every range in `sets`.
size_t lowest_fit(const std::vector<const RangeSet*>& sets, size_t bytes, size_t alignment) {
  size_t offset = 0;
  for (bool moved = true; moved;) {
    moved = false;
    for (const RangeSet* set : sets) {
      // Everything in [offset, r.second) collides with r, so jump past it.
      for (const auto* r = set->first_ending_after(offset); r && r->first < offset + bytes;
           r = set->first_ending_after(offset)) {
        offset = align_up(r->second, alignment);
        moved = true;
      }
    }
  }
  return offset;
}

// The smallest gap between the ranges in `sets` that fits, else on top of them all.
size_t smallest_fit(const std::vector<const RangeSet*>& sets, size_t bytes, size_t alignment,
                    std::vector<RangeSet::Range>& scratch) {
  scratch.clear();
  for (const RangeSet* set : sets) scratch.insert(scratch.end(), set->ranges().begin(), set->ranges().end());
  std::sort(scratch.begin(), scratch.end());
  size_t best_size = std::numeric_limits<size_t>::max(), offset = 0, top = 0;
  bool found = false;
  for (auto [start, end] : scratch) {
    size_t candidate = align_up(top, alignment);
    if (start > top && candidate + bytes <= start && start - top < best_size) {
      best_size = start - top;
      offset = candidate;
      found = true;
    }
    top = std::max(top, end);
  }
  return found ? offset : align_up(top, alignment);
}

// Places blocks in `order`, each clear of the placed blocks that overlap it in time.
Placement place_in_order(const Problem& p, const std::vector<uint32_t>& order, Gap gap) {
  Placement out;
  out.block_offset.assign(p.blocks.size(), 0);
  SpaceTime placed(p.steps.size());
  std::vector<RangeSet::Range> scratch;
  for (uint32_t b : order) {
    const Block& block = p.blocks[b];
    if (block.bytes == 0) continue;  // occupies nothing; offset 0 is aligned
    size_t lo = p.first_index[b], hi = p.last_index[b];
    const auto& sets = placed.overlapping(lo, hi);
    size_t offset = gap == Gap::lowest ? lowest_fit(sets, block.bytes, block.alignment)
                                       : smallest_fit(sets, block.bytes, block.alignment, scratch);
    out.block_offset[b] = offset;
    out.arena = std::max(out.arena, offset + block.bytes);
    placed.insert(lo, hi, offset, offset + block.bytes);
  }
  return out;
}

std::vector<uint32_t> order_by_size(const Problem& p) {
  std::vector<uint32_t> order(p.by_first);  // (first, id) order breaks size ties
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return p.blocks[a].bytes > p.blocks[b].bytes; });
  return order;
}

std::vector<uint32_t> order_by_area(const Problem& p) {
  std::vector<uint32_t> order(p.by_first);
  auto area = [&](uint32_t b) {
    return double(p.blocks[b].bytes) * double(p.blocks[b].last - p.blocks[b].first + 1);
  };
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return area(a) > area(b); });
  return order;
}

std::vector<uint32_t> order_by_breadth(const Problem& p) {
  std::vector<uint32_t> order(p.by_first);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (p.max_breadth[a] != p.max_breadth[b]) return p.max_breadth[a] > p.max_breadth[b];
    return p.blocks[a].bytes > p.blocks[b].bytes;
  });
  return order;
}

// A best-fit allocator replayed over time. Free holes live below `top`; everything
// above `top` is free. A hole that reaches `top` is folded into it.
class HoleAllocator {
 public:
  size_t allocate(size_t bytes, size_t alignment) {
    for (auto it = by_size_.lower_bound({bytes, 0}); it != by_size_.end(); ++it) {
      auto [size, start] = *it;
      size_t offset = align_up(start, alignment);
      if (offset + bytes > start + size) continue;
      by_size_.erase(it);
      by_start_.erase(start);
      if (offset > start) add_hole(start, offset - start);
      if (offset + bytes < start + size) add_hole(offset + bytes, start + size - offset - bytes);
      return offset;
    }
    size_t offset = align_up(top_, alignment);
    if (offset > top_) add_hole(top_, offset - top_);
    top_ = offset + bytes;
    high_water_ = std::max(high_water_, top_);
    return offset;
  }

  void release(size_t start, size_t bytes) {
    size_t end = start + bytes;
    auto next = by_start_.lower_bound(start);
    if (next != by_start_.end() && next->first == end) {
      end += next->second;
      by_size_.erase({next->second, next->first});
      next = by_start_.erase(next);
    }
    if (next != by_start_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == start) {
        start = prev->first;
        by_size_.erase({prev->second, prev->first});
        by_start_.erase(prev);
      }
    }
    if (end == top_)
      top_ = start;
    else
      add_hole(start, end - start);
  }

  size_t high_water() const { return high_water_; }

 private:
  void add_hole(size_t start, size_t size) {
    by_start_.emplace(start, size);
    by_size_.emplace(size, start);
  }
  std::map<size_t, size_t> by_start_;        // start -> size
  std::set<std::pair<size_t, size_t>> by_size_;  // (size, start): smallest fitting first
  size_t top_ = 0;
  size_t high_water_ = 0;
};

Placement place_best_fit(const Problem& p) {
  std::vector<uint32_t> order(p.by_first);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (p.blocks[a].first != p.blocks[b].first) return p.blocks[a].first < p.blocks[b].first;
    return p.blocks[a].bytes > p.blocks[b].bytes;
  });
  Placement out;
  out.block_offset.assign(p.blocks.size(), 0);
  HoleAllocator holes;
  using Death = std::pair<int32_t, uint32_t>;  // (last step, block)
  std::priority_queue<Death, std::vector<Death>, std::greater<>> live;
  for (uint32_t b : order) {
    const Block& block = p.blocks[b];
    while (!live.empty() && live.top().first < block.first) {
      uint32_t dead = live.top().second;
      live.pop();
      holes.release(out.block_offset[dead], p.blocks[dead].bytes);
    }
    if (block.bytes == 0) continue;
    out.block_offset[b] = holes.allocate(block.bytes, block.alignment);
    live.push({block.last, b});
  }
  out.arena = holes.high_water();
  return out;
}

Plan finish(std::span<const BufferRequest> buffers, const Problem& p, const Placement& placement,
            Strategy strategy) {
  Plan plan;
  plan.offsets.resize(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) plan.offsets[i] = placement.block_offset[p.block_of[i]];
  plan.arena_bytes = placement.arena;
  plan.lower_bound_bytes = p.lower_bound;
  plan.strategy = strategy;
  plan.peak_step = p.peak_step;
  return plan;
}

Plan plan_naive(std::span<const BufferRequest> buffers, const Problem& p) {
  Plan plan;
  plan.offsets.resize(buffers.size());
  size_t end = 0;
  for (size_t i = 0; i < buffers.size(); ++i) {
    if (buffers[i].bytes == 0) continue;
    plan.offsets[i] = align_up(end, buffers[i].alignment);
    end = plan.offsets[i] + buffers[i].bytes;
  }
  plan.arena_bytes = end;
  plan.lower_bound_bytes = p.lower_bound;
  plan.strategy = Strategy::naive;
  plan.peak_step = p.peak_step;
  return plan;
}

Plan plan_one(std::span<const BufferRequest> buffers, const Problem& p, Strategy strategy) {
  switch (strategy) {
    case Strategy::naive:
      return plan_naive(buffers, p);
    case Strategy::greedy_by_size:
      return finish(buffers, p, place_in_order(p, order_by_size(p), Gap::lowest), strategy);
    case Strategy::greedy_by_breadth:
      return finish(buffers, p, place_in_order(p, order_by_breadth(p), Gap::lowest), strategy);
    case Strategy::best_fit:
      return finish(buffers, p, place_best_fit(p), strategy);
    case Strategy::size_best_gap:
      return finish(buffers, p, place_in_order(p, order_by_size(p), Gap::smallest), strategy);
    case Strategy::breadth_best_gap:
      return finish(buffers, p, place_in_order(p, order_by_breadth(p), Gap::smallest), strategy);
    case Strategy::area_lowest:
      return finish(buffers, p, place_in_order(p, order_by_area(p), Gap::lowest), strategy);
    case Strategy::area_best_gap:
      return finish(buffers, p, place_in_order(p, order_by_area(p), Gap::smallest), strategy);
    case Strategy::best:
      break;
  }
  throw std::invalid_argument("memory planner: Strategy::best is not a single strategy");
}

}  // namespace

std::string_view strategy_name(Strategy strategy) {
  switch (strategy) {
    case Strategy::naive: return "naive";
    case Strategy::greedy_by_size: return "greedy_by_size";
    case Strategy::greedy_by_breadth: return "greedy_by_breadth";
    case Strategy::best_fit: return "best_fit";
    case Strategy::size_best_gap: return "size_best_gap";
    case Strategy::breadth_best_gap: return "breadth_best_gap";
    case Strategy::area_lowest: return "area_lowest";
    case Strategy::area_best_gap: return "area_best_gap";
    case Strategy::best: return "best";
  }
  return "unknown";
}

std::optional<Strategy> strategy_from_name(std::string_view name) {
  for (Strategy s : kConcreteStrategies)
    if (strategy_name(s) == name) return s;
  if (name == "best") return Strategy::best;
  return std::nullopt;
}

void validate(std::span<const BufferRequest> buffers) {
  for (size_t i = 0; i < buffers.size(); ++i) {
    const BufferRequest& b = buffers[i];
    if (b.first_step < 0)
      throw std::invalid_argument(fmt::format("{}: first_step {} is negative", label(buffers, i), b.first_step));
    if (b.last_step < b.first_step)
      throw std::invalid_argument(fmt::format("{}: last_step {} is before first_step {}", label(buffers, i),
                                              b.last_step, b.first_step));
    if (!std::has_single_bit(b.alignment))
      throw std::invalid_argument(
          fmt::format("{}: alignment {} is not a power of two", label(buffers, i), b.alignment));
    if (b.may_share_with < -1 || b.may_share_with >= int64_t(buffers.size()))
      throw std::invalid_argument(fmt::format("{}: may_share_with {} is not a buffer index (there are {} buffers)",
                                              label(buffers, i), b.may_share_with, buffers.size()));
    if (b.bytes > std::numeric_limits<size_t>::max() / 4)
      throw std::invalid_argument(fmt::format("{}: {} bytes is too large to plan", label(buffers, i), b.bytes));
  }
  // Each size is bounded, and so must be their sum: the strategies add up the bytes of
  // buffers live at once, and nine buffers of 2^61 bytes wrapped size_t (the planner
  // then never finished). No plan needs more than every buffer side by side, aligned.
  size_t total = 0;
  for (size_t i = 0; i < buffers.size(); ++i)
    if (__builtin_add_overflow(total, buffers[i].bytes, &total) ||
        __builtin_add_overflow(total, buffers[i].alignment, &total) || total > std::numeric_limits<size_t>::max() / 4)
      throw std::invalid_argument(fmt::format(
          "the buffers' sizes add up to more than {} bytes at {}; too large to plan",
          std::numeric_limits<size_t>::max() / 4, label(buffers, i)));
}

size_t lower_bound(std::span<const BufferRequest> buffers) { return prepare(buffers).lower_bound; }

size_t heap_bytes(std::span<const BufferRequest> buffers) {
  // A label longer than the string's inline capacity lives on the heap.
  auto label = [](const std::string& s) { return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0; };
  size_t bytes = buffers.size() * sizeof(BufferRequest);
  for (const BufferRequest& b : buffers) bytes += label(b.name) + label(b.op) + label(b.kind);
  return bytes;
}

Plan plan_memory(std::span<const BufferRequest> buffers, Strategy strategy) {
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].choice != -1)
      throw std::invalid_argument(fmt::format("{}: lives under choice {}; plan it with plan_with_choices",
                                              label(buffers, i), buffers[i].choice));
  Problem p = prepare(buffers);
  if (strategy != Strategy::best) return plan_one(buffers, p, strategy);
  Plan best;
  bool have = false;
  for (Strategy s : kConcreteStrategies) {
    Plan plan = plan_one(buffers, p, s);
    if (!have || plan.arena_bytes < best.arena_bytes) {
      best = std::move(plan);
      have = true;
    }
    if (best.arena_bytes == best.lower_bound_bytes) break;  // optimal; nothing can beat it
  }
  return best;
}

// ---- The overlap checker --------------------------------------------------------------

std::optional<std::string> find_overlap(std::span<const BufferRequest> buffers, const Plan& plan) {
  const size_t n = buffers.size();
  if (plan.offsets.size() != n)
    return fmt::format("the plan has {} offsets for {} buffers", plan.offsets.size(), n);
  for (size_t i = 0; i < n; ++i) {
    const BufferRequest& b = buffers[i];
    if (b.alignment == 0 || plan.offsets[i] % b.alignment != 0)
      return fmt::format("{}: offset {} is not a multiple of its alignment {}", label(buffers, i), plan.offsets[i],
                         b.alignment);
    if (b.bytes > 0 && plan.offsets[i] + b.bytes > plan.arena_bytes)
      return fmt::format("{}: ends at byte {}, past the arena of {} bytes", label(buffers, i),
                         plan.offsets[i] + b.bytes, plan.arena_bytes);
  }
  // j takes over t's storage at the step t dies: allowed when the hint is valid and
  // both sit at the same offset. As in the planner, a one-step target that itself took
  // over a buffer cannot be taken over (three buffers would share that step).
  auto takes_over = [&](size_t j) {
    if (!hint_is_valid(buffers, j)) return false;
    size_t t = size_t(buffers[j].may_share_with);
    if (plan.offsets[j] != plan.offsets[t] || buffers[t].bytes == 0) return false;
    const BufferRequest& target = buffers[t];
    return !(target.first_step == target.last_step && hint_is_valid(buffers, t) &&
             plan.offsets[t] == plan.offsets[size_t(target.may_share_with)]);
  };
  // Sweep over time. The live buffers, ordered by offset, are pairwise disjoint (or we
  // have already reported), so a new buffer can only hit its two neighbours. At each
  // step, buffers that take over storage go after the rest, so the others are still
  // checked against the full storage being handed over.
  std::vector<uint32_t> order;
  std::vector<bool> replacer(n, false);
  for (size_t i = 0; i < n; ++i) {
    if (buffers[i].bytes == 0) continue;
    replacer[i] = takes_over(i);
    order.push_back(uint32_t(i));
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (buffers[a].first_step != buffers[b].first_step) return buffers[a].first_step < buffers[b].first_step;
    if (replacer[a] != replacer[b]) return bool(replacer[b]);
    return a < b;
  });
  std::set<std::pair<size_t, uint32_t>> live;  // (offset, buffer)
  std::vector<bool> is_live(n, false);
  using Death = std::pair<int32_t, uint32_t>;
  std::priority_queue<Death, std::vector<Death>, std::greater<>> deaths;
  auto describe = [&](size_t a, size_t b) {
    if (a > b) std::swap(a, b);
    size_t lo = std::max(plan.offsets[a], plan.offsets[b]);
    size_t hi = std::min(plan.offsets[a] + buffers[a].bytes, plan.offsets[b] + buffers[b].bytes);
    int32_t step = std::max(buffers[a].first_step, buffers[b].first_step);
    return fmt::format(
        "{} (bytes [{}, {}), steps {}..{}) and {} (bytes [{}, {}), steps {}..{}) both use bytes [{}, {}) at step {}",
        label(buffers, a), plan.offsets[a], plan.offsets[a] + buffers[a].bytes, buffers[a].first_step,
        buffers[a].last_step, label(buffers, b), plan.offsets[b], plan.offsets[b] + buffers[b].bytes,
        buffers[b].first_step, buffers[b].last_step, lo, hi, step);
  };
  for (uint32_t j : order) {
    const BufferRequest& b = buffers[j];
    while (!deaths.empty() && deaths.top().first < b.first_step) {
      uint32_t dead = deaths.top().second;
      deaths.pop();
      if (is_live[dead]) {
        live.erase({plan.offsets[dead], dead});
        is_live[dead] = false;
      }
    }
    if (replacer[j]) {
      uint32_t t = uint32_t(b.may_share_with);
      if (is_live[t]) {
        live.erase({plan.offsets[t], t});
        is_live[t] = false;
      }
    }
    size_t start = plan.offsets[j], end = start + b.bytes;
    auto next = live.lower_bound({start, 0});
    if (next != live.end() && next->first < end) return describe(next->second, j);
    if (next != live.begin()) {
      auto prev = std::prev(next);
      if (prev->first + buffers[prev->second].bytes > start) return describe(prev->second, j);
    }
    live.insert({start, j});
    is_live[j] = true;
    deaths.push({b.last_step, j});
  }
  return std::nullopt;
}

void check_plan(std::span<const BufferRequest> buffers, const Plan& plan) {
  if (auto problem = find_overlap(buffers, plan)) throw std::invalid_argument("memory plan: " + *problem);
}

}  // namespace onnas::planner
