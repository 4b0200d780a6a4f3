// Planning buffers that exist only under run-time choices: one static plan that is
// sound for every admissible choice, with the placement of a run computed from the
// choices taken, without allocating. The search step needs it: which ops of an edge
// keep activations for the backward is the sample, drawn each step, while the plan is
// made once, before the first step.
//
//   ChoiceTree tree;
//   tree.groups = {{.name = "edge 0", .parent = -1, .capacity = 2}};            // at most 2 open
//   tree.choices = {{"conv", 0}, {"pool", 0}, {"skip", 0}};
//   buffers = {{.name = "x", .bytes = 4096, .first_step = 0, .last_step = 9},  // unconditional
//              {.name = "conv.saved", .bytes = 8192, .first_step = 1, .last_step = 8, .choice = 0},
//              {.name = "pool.argmax", .bytes = 4096, .first_step = 2, .last_step = 7, .choice = 1}};
//   Plan plan = plan_with_choices(buffers, tree);   // region of edge 0: 8192 + 4096 bytes, steps 1..8
//   check_choice_plan(buffers, tree, plan);         // throws if any admissible run could overlap
//   uint8_t open[] = {1, 0, 1};                     // this run: conv and skip
//   int64_t base[3];
//   place_choices(tree, plan, open, base);          // conv at the region's start, skip after it
//   // buffer i of choice c sits at base[c] + plan.offsets[i]; unconditional ones at plan.offsets[i]
//
// Words. A group is a set of choices of which at most `capacity` are open in a run; a
// group hangs under a choice of another group (`parent`), or at the top (-1), and its
// choices may be open only while that parent is. A buffer under a choice exists, over
// its lifetime, only in runs where the choice is open.
//
// The plan, bottom-up:
//   - a choice's content (its buffers, and the regions of the groups under it) is
//     planned as a problem of its own by plan_memory; offsets are relative to the
//     choice's base, its size is that sub-arena rounded up to its group's alignment;
//   - a group's region is as large as its `capacity` largest choices together, and
//     lives from the first step of any of its choices' content to the last;
//   - the unconditional buffers and the top groups' regions are planned together.
// A run packs the open choices of each group one after the other from the region's
// start, in choice order: any admissible set fits, and choices of one group never share
// a byte. What it costs against a plan made for one known run: each region reserves
// its worst case for the union of its choices' lifetimes.
//
// Errors: std::invalid_argument with one sentence naming the buffer, group or choice.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memory_planner/planner.h"

namespace onnas::planner {

struct ChoiceGroup {
  std::string name;
  int32_t parent = -1;    // a choice, or -1: the top
  int32_t capacity = 1;   // at most this many of its choices open in one run
};

struct Choice {
  std::string name;
  int32_t group = 0;
};

struct ChoiceTree {
  std::vector<ChoiceGroup> groups;
  std::vector<Choice> choices;
  bool empty() const { return choices.empty(); }
};


// Throws std::invalid_argument naming the first bad group, choice or buffer: a parent
// that is not a choice (or makes a cycle), a capacity below 1, a choice of no group, a
// buffer under no choice of the tree; and whatever validate() refuses.
void validate(std::span<const BufferRequest> buffers, const ChoiceTree& tree);

// Plans buffers with choices (Plan::offsets relative to the choice's base for buffers
// under one). `strategy` is used for every sub-problem. Without choices it is plan_memory.
Plan plan_with_choices(std::span<const BufferRequest> buffers, const ChoiceTree& tree,
                       Strategy strategy = Strategy::best);

// The base offset of every choice for one run (`open`: one flag per choice), -1 for the
// closed ones. Allocates nothing. Throws std::invalid_argument if a group has more open
// choices than its capacity or an open choice hangs under a closed one.
void place_choices(const ChoiceTree& tree, const Plan& plan, std::span<const uint8_t> open,
                   std::span<int64_t> base);

// The first reason the plan could overlap two live buffers in some admissible run, or
// nullopt: a choice's content overlaps or leaves its size, a group region smaller than
// its capacity's worst case or shorter-lived than its content, or the top level fails
// find_overlap. Proves the plan for every run at once (no enumeration).
std::optional<std::string> find_choice_overlap(std::span<const BufferRequest> buffers, const ChoiceTree& tree,
                                               const Plan& plan);
void check_choice_plan(std::span<const BufferRequest> buffers, const ChoiceTree& tree, const Plan& plan);

// The run that fills every region: in each group, its `capacity` largest choices open
// (under open parents). What dumps draw to show the worst case.
std::vector<uint8_t> largest_choices(const ChoiceTree& tree, const Plan& plan);

// One run made concrete: the buffers that exist under `open`, at absolute offsets, as a
// plan of their own (for find_overlap in tests, and for dumps). `index` maps each
// concrete buffer to its input index.
struct ConcretePlan {
  std::vector<BufferRequest> buffers;
  Plan plan;
  std::vector<uint32_t> index;
};
ConcretePlan concretize(std::span<const BufferRequest> buffers, const ChoiceTree& tree, const Plan& plan,
                        std::span<const uint8_t> open);

}  // namespace onnas::planner
