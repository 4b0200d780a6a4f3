#include "graph/schedule.h"

#include <algorithm>
#include <set>

namespace onnas::graph {

int Schedule::Builder::add(Part part) {
  programs_.push_back(lower(part.graph, part.options));
  labels_.push_back(std::move(part.label));
  return int(programs_.size()) - 1;
}

namespace {
Schedule::Builder lower_all(std::vector<Schedule::Part> parts) {
  Schedule::Builder b;
  for (Schedule::Part& part : parts) b.add(std::move(part));  // each graph freed once lowered
  return b;
}
}  // namespace

Schedule::Schedule(std::vector<Part> parts, std::vector<Handoff> handoffs, std::vector<std::pair<int, ValueId>> keep,
                   planner::Strategy strategy)
    : Schedule(lower_all(std::move(parts)), std::move(handoffs), std::move(keep), strategy) {}

Schedule::Schedule(Builder lowered, std::vector<Handoff> handoffs, std::vector<std::pair<int, ValueId>> keep,
                   planner::Strategy strategy)
    : programs_(std::move(lowered.programs_)), labels_(std::move(lowered.labels_)) {
  std::vector<size_t> buffer_base, choice_base, group_base;
  int32_t step = 0;
  size_t inputs = 0;
  for (const Program& p : programs_) {
    first_step_.push_back(step);
    step += int32_t(p.num_steps());
    buffer_base.push_back(buffers_.size());
    choice_base.push_back(tree_.choices.size());
    group_base.push_back(tree_.groups.size());
    for (planner::BufferRequest b : p.buffers_) {
      b.first_step += first_step_.back();
      b.last_step += first_step_.back();
      if (b.choice >= 0) b.choice += int32_t(choice_base.back());
      if (b.may_share_with >= 0) b.may_share_with += int32_t(buffer_base.back());
      buffers_.push_back(std::move(b));
    }
    for (planner::ChoiceGroup g : p.tree_.groups) {
      if (g.parent >= 0) g.parent += int32_t(choice_base.back());
      tree_.groups.push_back(std::move(g));
    }
    for (planner::Choice c : p.tree_.choices) {
      c.group += int32_t(group_base.back());
      tree_.choices.push_back(std::move(c));
    }
    inputs += p.inputs_.size();
  }
  const int32_t last_step = std::max(step - 1, 0);

  auto buffer_of = [&](int program, ValueId v, const char* what) {
    if (program < 0 || size_t(program) >= programs_.size()) fail("schedule: {} names program {}", what, program);
    const Program& p = programs_[size_t(program)];
    if (v < 0 || size_t(v) >= p.vals_.size()) fail("schedule: {} names value {} of program {}", what, v, program);
    const Program::Val& val = p.vals_[size_t(v)];
    if (val.buffer < 0 || val.choice >= 0 || val.home >= 0)
      fail("schedule: {} '{}' of '{}' is not an arena value that always exists (an output of the program?)", what,
           p.name(v), labels_[size_t(program)]);
    return buffer_base[size_t(program)] + size_t(val.buffer);
  };
  struct Handed {
    int to;
    ValueId input;
    size_t buffer;
  };
  std::vector<Handed> handed;
  std::set<size_t> handed_buffers;
  for (const Handoff& h : handoffs) {
    const size_t b = buffer_of(h.from, h.value, "a handoff");
    if (h.to <= h.from || size_t(h.to) >= programs_.size())
      fail("schedule: a handoff from '{}' goes to program {}, not a later one", labels_[size_t(h.from)], h.to);
    Program& to = programs_[size_t(h.to)];
    if (h.input < 0 || size_t(h.input) >= to.vals_.size() || to.vals_[size_t(h.input)].kind != ValueKind::input)
      fail("schedule: a handoff into '{}' names value {}, not an input", labels_[size_t(h.to)], h.input);
    const Program::Val& in = to.vals_[size_t(h.input)];
    const Program& from = programs_[size_t(h.from)];
    if (to.type(h.input) != from.type(h.value))
      fail("schedule: '{}' of '{}' is {} {}, handed to '{}' of '{}' which is {} {}", from.name(h.value),
           labels_[size_t(h.from)], dtype_name(from.type(h.value).dtype), from.type(h.value).shape.str(),
           to.name(h.input), labels_[size_t(h.to)], dtype_name(to.type(h.input).dtype), to.type(h.input).shape.str());
    if (in.last_step >= 0)
      buffers_[b].last_step = std::max(buffers_[b].last_step, first_step_[size_t(h.to)] + in.last_step);
    buffers_[b].kind += " (handed on)";
    handed.push_back({h.to, h.input, b});
    if (handed_buffers.insert(b).second) handed_bytes_ += buffers_[b].bytes;
  }
  for (auto [program, v] : keep) buffers_[buffer_of(program, v, "a kept value")].last_step = last_step;

  plan_ = planner::plan_with_choices(buffers_, tree_, strategy);
  for (size_t p = 0; p < programs_.size(); ++p) {
    Program& prog = programs_[p];
    const size_t nb = prog.buffers_.size(), nc = prog.tree_.choices.size(), ng = prog.tree_.groups.size();
    prog.plan_.offsets.assign(plan_.offsets.begin() + std::ptrdiff_t(buffer_base[p]),
                              plan_.offsets.begin() + std::ptrdiff_t(buffer_base[p] + nb));
    prog.plan_.groups.assign(plan_.groups.begin() + std::ptrdiff_t(group_base[p]),
                             plan_.groups.begin() + std::ptrdiff_t(group_base[p] + ng));
    prog.plan_.choice_bytes.assign(plan_.choice_bytes.begin() + std::ptrdiff_t(choice_base[p]),
                                   plan_.choice_bytes.begin() + std::ptrdiff_t(choice_base[p] + nc));
    prog.plan_.arena_bytes = plan_.arena_bytes;
    prog.plan_.lower_bound_bytes = plan_.lower_bound_bytes;
    prog.plan_.strategy = plan_.strategy;
    prog.apply_plan();
    // The schedule's list has every buffer; the program's own copy is not needed again.
    prog.release_planning_data();
  }
  for (const Handed& h : handed) {
    Program::Val& in = programs_[size_t(h.to)].vals_[size_t(h.input)];
    in.offset = int64_t(plan_.offsets[h.buffer]);
    in.handed = true;
  }
  scratch_.reserve(inputs + 16);
}

void Schedule::run(Arena& arena, const ParamStore& params, std::span<const Feed> feeds, const GateValues* gates,
                   Profile* profile) {
  for (size_t p = 0; p < programs_.size(); ++p) {
    scratch_.clear();
    for (const Feed& f : feeds)
      if (f.program == int(p) && scratch_.size() < scratch_.capacity()) scratch_.push_back({f.value, f.tensor});
    programs_[p].run(arena, params, scratch_, gates, profile);
  }
}

Tensor Schedule::output(const Arena& arena, int program, ValueId value) const {
  if (program < 0 || size_t(program) >= programs_.size()) fail("schedule: no program {}", program);
  return programs_[size_t(program)].output(arena, value);
}

size_t Schedule::table_bytes() const {
  size_t bytes = scratch_.capacity() * sizeof(graph::Feed) + first_step_.capacity() * sizeof(int32_t) +
                 programs_.capacity() * sizeof(Program);
  for (const Program& p : programs_) bytes += p.table_bytes();
  for (const std::string& l : labels_) bytes += sizeof(l) + l.capacity();
  return bytes;
}

size_t Schedule::planning_bytes() const {
  size_t bytes = planner::heap_bytes(buffers_) + plan_.offsets.capacity() * sizeof(size_t);
  for (const Program& p : programs_) bytes += p.planning_bytes();
  return bytes;
}

void Schedule::release_planning_data() {
  std::vector<planner::BufferRequest>().swap(buffers_);
  std::vector<size_t>().swap(plan_.offsets);
  for (Program& p : programs_) p.release_planning_data();
}

}  // namespace onnas::graph
