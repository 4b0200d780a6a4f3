// The storage of the weight gradients of a search step: one block, sized before the
// first step for the worst sample a configuration admits, and laid out each step for
// the weights its sample trains (the others get no storage: they read as zero and the
// optimizers leave them untouched). Planned like run-time values (memory_planner/
// choices.h): each weight's gradient lives under the gate of the program step that
// accumulates it, so the weights of an edge's ops share the room of its k_grad
// largest, and the edges of a node the room of its largest pair.
//
//   GradientBlock block(weight_pass, params, weight_names);
//   block.install(params, &gate_values);   // every step, after the gates are set
//   block.trained()[i]                      // whether weight i gets a gradient this step
#pragma once

#include <span>
#include <string>
#include <vector>

#include "graph/gates.h"
#include "memory_planner/planner.h"
#include "nas/search_step.h"
#include "runtime/param_store.h"
#include "runtime/tensor.h"

namespace onnas::nas {

class GradientBlock {
 public:
  GradientBlock() = default;
  // `gates` nullptr: every weight is trained every step (full mode). Allocates the block.
  GradientBlock(const GradientPass& weight_pass, const ParamStore& params, std::span<const std::string> weight_names,
                const graph::GateSpace* gates, bool allocate = true);

  size_t bytes() const { return plan_.arena_bytes; }
  // Points the store's weight gradients into the block as this run's gates lay them
  // out (the untrained at nothing). Allocates nothing.
  void install(ParamStore& params, const graph::GateValues* gates);
  // No weight gradient has storage.
  void detach(ParamStore& params) const;
  // Only the trained() flags for this run (when the store holds every gradient itself).
  void update_trained(const graph::GateValues* gates);
  // Per weight (in weight_names order): trained in the run last installed.
  const std::vector<uint8_t>& trained() const { return trained_; }

 private:
  std::vector<std::string> names_;
  std::vector<graph::GateId> gate_;       // per weight: the gate of its accumulation (kAlways), or -1: never
  std::vector<bool> accumulated_;
  std::vector<int32_t> choice_;  // per weight: the choice its gradient's storage is under, or -1
  planner::ChoiceTree tree_;
  std::vector<graph::GateId> choice_gate_;
  planner::Plan plan_;
  Buffer block_;
  std::vector<uint8_t> trained_, open_;
  std::vector<int64_t> base_;
};

}  // namespace onnas::nas
