#include "nas/grad_block.h"

#include <map>

#include "runtime/error.h"

namespace onnas::nas {

GradientBlock::GradientBlock(const GradientPass& weight_pass, const ParamStore& params,
                             std::span<const std::string> weight_names, const graph::GateSpace* gates, bool allocate)
    : names_(weight_names.begin(), weight_names.end()) {
  std::map<std::string, graph::GateId> gate_of;
  for (const GradientPass::Labeled& l : weight_pass.programs())
    for (const graph::Program::GradTarget& t : l.program->grad_targets()) {
      auto [it, fresh] = gate_of.emplace(t.param, t.gate);
      // A weight accumulated under two gates is kept whenever either is open.
      if (!fresh && it->second != t.gate) it->second = graph::kAlways;
    }
  std::vector<graph::GateId> leaves(names_.size(), -1);
  gate_.assign(names_.size(), -1);
  accumulated_.assign(names_.size(), false);
  for (size_t i = 0; i < names_.size(); ++i) {
    auto it = gate_of.find(names_[i]);
    if (it == gate_of.end()) continue;
    accumulated_[i] = true;
    gate_[i] = it->second;
    if (gates && it->second != graph::kAlways) leaves[i] = gates->deepest_leaf(it->second);
  }
  graph::GateChoices c;
  if (gates) {
    std::vector<std::pair<graph::GateId, int>> used;
    for (graph::GateId l : leaves)
      if (l >= 0) used.emplace_back(l, 0);
    c = graph::gate_choices(*gates, std::move(used));
    tree_ = c.tree;
    choice_gate_ = c.gate_of_choice;
  }
  std::vector<planner::BufferRequest> buffers;  // per weight (0 bytes if never accumulated)
  for (size_t i = 0; i < names_.size(); ++i) {
    planner::BufferRequest b;
    b.name = names_[i] + "@grad";
    b.bytes = accumulated_[i] ? params.get(names_[i]).bytes() : 0;
    b.first_step = b.last_step = 0;
    b.kind = "gradient";
    if (leaves[i] >= 0) b.choice = c.at(leaves[i]);
    buffers.push_back(std::move(b));
  }
  plan_ = planner::plan_with_choices(buffers, tree_);
  planner::check_choice_plan(buffers, tree_, plan_);
  for (const planner::BufferRequest& b : buffers) choice_.push_back(b.choice);
  if (allocate) block_ = Buffer(std::max<size_t>(plan_.arena_bytes, kAlignment));
  trained_.assign(names_.size(), 0);
  open_.assign(tree_.choices.size(), 0);
  base_.assign(tree_.choices.size(), -1);
}

void GradientBlock::install(ParamStore& params, const graph::GateValues* gates) {
  ONNAS_CHECK(block_.data() != nullptr, "gradient block: installed without memory");
  if (!tree_.empty()) {
    ONNAS_CHECK(gates != nullptr, "gradient block: the layout depends on the sample; pass its gates");
    for (size_t c = 0; c < choice_gate_.size(); ++c) open_[c] = gates->open(choice_gate_[c]) ? 1 : 0;
    planner::place_choices(tree_, plan_, open_, base_);
  }
  std::byte* base = static_cast<std::byte*>(block_.data());
  for (size_t i = 0; i < names_.size(); ++i) {
    const bool trained = accumulated_[i] && (!gates || gates->open(gate_[i]));
    trained_[i] = trained ? 1 : 0;
    float* at = nullptr;
    if (trained) {
      const int32_t c = choice_[i];
      at = reinterpret_cast<float*>(base + plan_.offsets[i] + (c >= 0 ? size_t(base_[size_t(c)]) : 0));
    }
    params.set_grad_view(names_[i], at);
  }
}

void GradientBlock::update_trained(const graph::GateValues* gates) {
  for (size_t i = 0; i < names_.size(); ++i) trained_[i] = accumulated_[i] && (!gates || gates->open(gate_[i])) ? 1 : 0;
}

void GradientBlock::detach(ParamStore& params) const {
  for (const std::string& n : names_) params.set_grad_view(n, nullptr);
}

}  // namespace onnas::nas
