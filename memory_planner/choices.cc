// Choice trees (choices.h): every sub-problem is an ordinary plan_memory problem, and
// the checker is find_overlap on each of them plus the arithmetic of the regions.
#include "memory_planner/choices.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <stdexcept>

namespace onnas::planner {
namespace {

size_t align_up(size_t value, size_t alignment) { return (value + alignment - 1) & ~(alignment - 1); }

// Groups in an order where a group comes after the group of its parent choice.
std::vector<int32_t> top_down(const ChoiceTree& tree) {
  const size_t n = tree.groups.size();
  std::vector<int32_t> depth(n, -1), order;
  std::function<int32_t(int32_t, size_t)> depth_of = [&](int32_t g, size_t hops) -> int32_t {
    if (hops > n) throw std::invalid_argument(fmt::format("choice group {} ('{}') is its own ancestor", g, tree.groups[size_t(g)].name));
    if (depth[size_t(g)] >= 0) return depth[size_t(g)];
    const int32_t parent = tree.groups[size_t(g)].parent;
    const int32_t d = parent < 0 ? 0 : depth_of(tree.choices[size_t(parent)].group, hops + 1) + 1;
    return depth[size_t(g)] = d;
  };
  for (size_t g = 0; g < n; ++g) depth_of(int32_t(g), 0);
  order.resize(n);
  for (size_t g = 0; g < n; ++g) order[g] = int32_t(g);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return depth[size_t(a)] < depth[size_t(b)]; });
  return order;
}

// The sum of the `capacity` largest sizes.
size_t worst_case(std::vector<size_t> sizes, int32_t capacity) {
  std::sort(sizes.begin(), sizes.end(), std::greater<>());
  size_t total = 0;
  for (size_t i = 0; i < sizes.size() && i < size_t(capacity); ++i) total += sizes[i];
  return total;
}

struct Content {
  std::vector<BufferRequest> buffers;  // the choice's own buffers, then one rectangle per child group
  std::vector<uint32_t> own;           // input index of each own buffer
  std::vector<int32_t> groups;         // the child group of each rectangle
};

// The sub-problem of a choice (or of the top, choice = -1), with the child groups'
// regions as rectangles.
Content content_of(std::span<const BufferRequest> buffers, const ChoiceTree& tree, const Plan& plan, int32_t choice) {
  Content c;
  std::vector<int32_t> at(buffers.size(), -1);
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].choice == choice) {
      at[i] = int32_t(c.buffers.size());
      c.buffers.push_back(buffers[i]);
      c.buffers.back().choice = -1;
      c.own.push_back(uint32_t(i));
    }
  // In-place hints between buffers of this content, renumbered; others dropped.
  for (BufferRequest& b : c.buffers)
    b.may_share_with = b.may_share_with >= 0 ? at[size_t(b.may_share_with)] : -1;
  for (size_t g = 0; g < tree.groups.size(); ++g) {
    if (tree.groups[g].parent != choice) continue;
    const GroupRegion& r = plan.groups[g];
    if (r.last_step < r.first_step || r.bytes == 0) continue;
    BufferRequest rect;
    rect.name = "group " + tree.groups[g].name;
    rect.bytes = r.bytes;
    rect.first_step = r.first_step;
    rect.last_step = r.last_step;
    rect.alignment = r.alignment;
    rect.kind = "choices";
    c.buffers.push_back(std::move(rect));
    c.groups.push_back(int32_t(g));
  }
  return c;
}

std::pair<int32_t, int32_t> extent(const std::vector<BufferRequest>& buffers) {
  int32_t first = std::numeric_limits<int32_t>::max(), last = -1;
  for (const BufferRequest& b : buffers)
    if (b.bytes > 0) first = std::min(first, b.first_step), last = std::max(last, b.last_step);
  return {first, last};
}

}  // namespace

void validate(std::span<const BufferRequest> buffers, const ChoiceTree& tree) {
  for (size_t g = 0; g < tree.groups.size(); ++g) {
    const ChoiceGroup& group = tree.groups[g];
    if (group.capacity < 1)
      throw std::invalid_argument(fmt::format("choice group {} ('{}'): capacity {} is below 1", g, group.name,
                                              group.capacity));
    if (group.parent < -1 || group.parent >= int64_t(tree.choices.size()))
      throw std::invalid_argument(fmt::format("choice group {} ('{}'): parent {} is not a choice (there are {})", g,
                                              group.name, group.parent, tree.choices.size()));
  }
  for (size_t c = 0; c < tree.choices.size(); ++c)
    if (tree.choices[c].group < 0 || size_t(tree.choices[c].group) >= tree.groups.size())
      throw std::invalid_argument(fmt::format("choice {} ('{}'): group {} does not exist (there are {})", c,
                                              tree.choices[c].name, tree.choices[c].group, tree.groups.size()));
  // Choices group by group, each group after the choice it hangs under (so a run is
  // placed in one pass, and a cycle is impossible).
  std::vector<bool> seen(tree.groups.size(), false);
  for (size_t c = 0; c < tree.choices.size(); ++c) {
    const int32_t g = tree.choices[c].group;
    if (c > 0 && tree.choices[c - 1].group != g && seen[size_t(g)])
      throw std::invalid_argument(fmt::format("choice {} ('{}'): the choices of group '{}' are not listed together", c,
                                              tree.choices[c].name, tree.groups[size_t(g)].name));
    seen[size_t(g)] = true;
    const int32_t parent = tree.groups[size_t(g)].parent;
    if (parent >= int32_t(c) || (parent >= 0 && tree.choices[size_t(parent)].group == g))
      throw std::invalid_argument(fmt::format("choice {} ('{}'): its group '{}' hangs under choice {}, which is not "
                                              "listed before the group", c, tree.choices[c].name,
                                              tree.groups[size_t(g)].name, parent));
  }
  validate(buffers);
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].choice < -1 || buffers[i].choice >= int64_t(tree.choices.size()))
      throw std::invalid_argument(fmt::format("buffer {} ('{}'): choice {} is not a choice of the tree (there are {})",
                                              i, buffers[i].name, buffers[i].choice, tree.choices.size()));
}

Plan plan_with_choices(std::span<const BufferRequest> buffers, const ChoiceTree& tree, Strategy strategy) {
  validate(buffers, tree);
  Plan plan;
  plan.offsets.assign(buffers.size(), 0);
  plan.groups.assign(tree.groups.size(), {});
  plan.choice_bytes.assign(tree.choices.size(), 0);
  std::vector<int32_t> order = top_down(tree);
  // Bottom-up: the deepest groups first, so a choice's child regions are known.
  std::vector<std::pair<int32_t, int32_t>> choice_extent(tree.choices.size(), {0, -1});
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const int32_t g = *it;
    GroupRegion& region = plan.groups[size_t(g)];
    region.first_step = std::numeric_limits<int32_t>::max();
    region.last_step = -1;
    region.alignment = 1;
    std::vector<int32_t> members;
    for (size_t c = 0; c < tree.choices.size(); ++c)
      if (tree.choices[c].group == g) members.push_back(int32_t(c));
    std::vector<Plan> sub(members.size());
    for (size_t m = 0; m < members.size(); ++m) {
      Content content = content_of(buffers, tree, plan, members[m]);
      for (const BufferRequest& b : content.buffers) region.alignment = std::max(region.alignment, b.alignment);
      if (content.buffers.empty()) continue;
      sub[m] = plan_memory(content.buffers, strategy);
      for (size_t k = 0; k < content.own.size(); ++k) plan.offsets[content.own[k]] = sub[m].offsets[k];
      for (size_t k = 0; k < content.groups.size(); ++k)
        plan.groups[size_t(content.groups[k])].offset = sub[m].offsets[content.own.size() + k];
      auto [first, last] = extent(content.buffers);
      choice_extent[size_t(members[m])] = {first, last};
      if (last >= first) {
        region.first_step = std::min(region.first_step, first);
        region.last_step = std::max(region.last_step, last);
      }
    }
    std::vector<size_t> sizes;
    for (size_t m = 0; m < members.size(); ++m) {
      const size_t bytes = align_up(sub[m].arena_bytes, region.alignment);
      plan.choice_bytes[size_t(members[m])] = bytes;
      sizes.push_back(bytes);
    }
    region.bytes = worst_case(sizes, tree.groups[size_t(g)].capacity);
    if (region.last_step < 0) region.first_step = 0;
  }
  Content top = content_of(buffers, tree, plan, -1);
  Plan outer = plan_memory(top.buffers, strategy);
  for (size_t k = 0; k < top.own.size(); ++k) plan.offsets[top.own[k]] = outer.offsets[k];
  for (size_t k = 0; k < top.groups.size(); ++k) plan.groups[size_t(top.groups[k])].offset = outer.offsets[top.own.size() + k];
  plan.arena_bytes = outer.arena_bytes;
  plan.lower_bound_bytes = outer.lower_bound_bytes;
  plan.strategy = outer.strategy;
  plan.peak_step = outer.peak_step;
  return plan;
}

void place_choices(const ChoiceTree& tree, const Plan& plan, std::span<const uint8_t> open, std::span<int64_t> base) {
  if (open.size() != tree.choices.size() || base.size() != tree.choices.size())
    throw std::invalid_argument(fmt::format("place_choices: {} flags and {} bases for {} choices", open.size(),
                                            base.size(), tree.choices.size()));
  // Choices come group by group, and a group after its parent choice (validate), so one
  // pass sees every parent placed before its children.
  int32_t group = -1, count = 0;
  int64_t at = 0;
  bool parent_open = true;
  for (size_t c = 0; c < tree.choices.size(); ++c) {
    if (tree.choices[c].group != group) {
      group = tree.choices[c].group;
      const ChoiceGroup& g = tree.groups[size_t(group)];
      parent_open = g.parent < 0 || open[size_t(g.parent)];
      at = (g.parent < 0 ? 0 : base[size_t(g.parent)]) + int64_t(plan.groups[size_t(group)].offset);
      count = 0;
    }
    base[c] = -1;
    if (!open[c]) continue;
    const ChoiceGroup& g = tree.groups[size_t(group)];
    if (!parent_open)
      throw std::invalid_argument(fmt::format("choice '{}' is open under the closed choice '{}'", tree.choices[c].name,
                                              tree.choices[size_t(g.parent)].name));
    if (++count > g.capacity)
      throw std::invalid_argument(
          fmt::format("choice group '{}' has more than {} open choices (the plan's capacity)", g.name, g.capacity));
    base[c] = at;
    at += int64_t(plan.choice_bytes[c]);
  }
}

std::optional<std::string> find_choice_overlap(std::span<const BufferRequest> buffers, const ChoiceTree& tree,
                                               const Plan& plan) {
  if (plan.groups.size() != tree.groups.size() || plan.choice_bytes.size() != tree.choices.size())
    return fmt::format("the plan has {} groups and {} choice sizes for a tree of {} groups and {} choices",
                       plan.groups.size(), plan.choice_bytes.size(), tree.groups.size(), tree.choices.size());
  for (size_t g = 0; g < tree.groups.size(); ++g) {
    const GroupRegion& r = plan.groups[g];
    std::vector<size_t> sizes;
    for (size_t c = 0; c < tree.choices.size(); ++c) {
      if (tree.choices[c].group != int32_t(g)) continue;
      if (plan.choice_bytes[c] % r.alignment != 0)
        return fmt::format("choice {} ('{}'): {} bytes is not a multiple of its group's alignment {}", c,
                           tree.choices[c].name, plan.choice_bytes[c], r.alignment);
      sizes.push_back(plan.choice_bytes[c]);
      // The choice's content: inside its size, inside the region's lifetime, no overlap.
      Content content = content_of(buffers, tree, plan, int32_t(c));
      Plan sub;
      sub.arena_bytes = plan.choice_bytes[c];
      for (uint32_t i : content.own) sub.offsets.push_back(plan.offsets[i]);
      for (int32_t child : content.groups) sub.offsets.push_back(plan.groups[size_t(child)].offset);
      if (auto problem = find_overlap(content.buffers, sub))
        return fmt::format("inside choice {} ('{}'): {}", c, tree.choices[c].name, *problem);
      auto [first, last] = extent(content.buffers);
      if (last >= first && (first < r.first_step || last > r.last_step))
        return fmt::format("choice {} ('{}') lives over steps {}..{}, outside its group's region (steps {}..{})", c,
                           tree.choices[c].name, first, last, r.first_step, r.last_step);
      for (const BufferRequest& b : content.buffers)
        if (b.alignment > r.alignment)
          return fmt::format("choice {} ('{}') holds '{}' aligned to {}, more than its group's {}", c,
                             tree.choices[c].name, b.name, b.alignment, r.alignment);
    }
    if (size_t need = worst_case(sizes, tree.groups[g].capacity); need > r.bytes)
      return fmt::format("choice group {} ('{}'): region of {} bytes, but {} open choices can take {}", g,
                         tree.groups[g].name, r.bytes, tree.groups[g].capacity, need);
    if (r.offset % r.alignment != 0)
      return fmt::format("choice group {} ('{}'): offset {} is not a multiple of its alignment {}", g,
                         tree.groups[g].name, r.offset, r.alignment);
  }
  Content top = content_of(buffers, tree, plan, -1);
  Plan outer;
  outer.arena_bytes = plan.arena_bytes;
  for (uint32_t i : top.own) outer.offsets.push_back(plan.offsets[i]);
  for (int32_t g : top.groups) outer.offsets.push_back(plan.groups[size_t(g)].offset);
  if (auto problem = find_overlap(top.buffers, outer)) return *problem;
  return std::nullopt;
}

void check_choice_plan(std::span<const BufferRequest> buffers, const ChoiceTree& tree, const Plan& plan) {
  if (auto problem = find_choice_overlap(buffers, tree, plan)) throw std::invalid_argument("memory plan: " + *problem);
}

std::vector<uint8_t> largest_choices(const ChoiceTree& tree, const Plan& plan) {
  std::vector<uint8_t> open(tree.choices.size(), 0);
  // Choices are listed group by group, each group after its parent choice (validate).
  for (size_t first = 0; first < tree.choices.size();) {
    const int32_t g = tree.choices[first].group;
    size_t end = first;
    while (end < tree.choices.size() && tree.choices[end].group == g) ++end;
    const int32_t parent = tree.groups[size_t(g)].parent;
    if (parent < 0 || open[size_t(parent)]) {
      std::vector<size_t> members;
      for (size_t c = first; c < end; ++c) members.push_back(c);
      std::stable_sort(members.begin(), members.end(),
                       [&](size_t a, size_t b) { return plan.choice_bytes[a] > plan.choice_bytes[b]; });
      for (size_t i = 0; i < members.size() && i < size_t(tree.groups[size_t(g)].capacity); ++i) open[members[i]] = 1;
    }
    first = end;
  }
  return open;
}

ConcretePlan concretize(std::span<const BufferRequest> buffers, const ChoiceTree& tree, const Plan& plan,
                        std::span<const uint8_t> open) {
  std::vector<int64_t> base(tree.choices.size(), -1);
  place_choices(tree, plan, open, base);
  ConcretePlan out;
  out.plan.arena_bytes = plan.arena_bytes;
  out.plan.lower_bound_bytes = plan.lower_bound_bytes;
  out.plan.strategy = plan.strategy;
  out.plan.peak_step = plan.peak_step;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const int32_t c = buffers[i].choice;
    if (c >= 0 && base[size_t(c)] < 0) continue;
    BufferRequest b = buffers[i];
    b.choice = -1;
    // A hint into a buffer that is not here, or that sits elsewhere, means nothing now.
    b.may_share_with = -1;
    out.buffers.push_back(std::move(b));
    out.plan.offsets.push_back(plan.offsets[i] + (c >= 0 ? size_t(base[size_t(c)]) : 0));
    out.index.push_back(uint32_t(i));
  }
  // Keep the in-place hints between buffers that are both here.
  std::vector<int32_t> at(buffers.size(), -1);
  for (size_t k = 0; k < out.index.size(); ++k) at[out.index[k]] = int32_t(k);
  for (size_t k = 0; k < out.index.size(); ++k) {
    const int32_t t = buffers[out.index[k]].may_share_with;
    if (t >= 0 && at[size_t(t)] >= 0) out.buffers[k].may_share_with = at[size_t(t)];
  }
  return out;
}

}  // namespace onnas::planner
