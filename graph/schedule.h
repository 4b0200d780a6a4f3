// A schedule: programs that run one after the other as one unit, handing values on
// from one to the next, planned together in one arena. Step-by-step back-propagation
// is one (the phases of a step: forward to a cell's inputs, the cell's forward and
// backward, handing the gradients of its inputs to the phase of the cell before), and
// so is a plain one-program step. The caller says what the parts are and what flows
// between them; the schedule plans every buffer of every part and every handed value
// in one problem of the memory planner, so a handed value lives exactly from the step
// that writes it to the last step that reads it, and nothing is copied.
//
//   std::vector<Schedule::Part> parts;
//   parts.push_back({"forward to cell 2", std::move(g0), {.outputs = {s2}}});
//   parts.push_back({"cell 2 phase", std::move(g1), {.outputs = {loss, d_s2}, .param_grads = ...}});
//   Schedule s(std::move(parts), {{.from = 0, .value = s2, .to = 1, .input = s2_in}}, {{1, loss}});
//   Arena arena(s.arena_bytes());
//   s.run(arena, params, {{0, x0, images}, {1, labels1, labels}}, &gates);
//   float loss = s.output(arena, 1, loss).f32()[0];
//
// Plan: program p's steps are numbered after those of programs 0..p-1; a handed value
// is the producing program's output buffer with its life extended to the consumer's
// last read; `keep` values live to the end of the schedule (the host reads them
// after run()). The run-time choices of every program (graph/gates.h) are planned in
// the same problem (memory_planner/choices.h), each program's regions apart.
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "graph/compile.h"

namespace onnas::graph {

class Schedule {
 public:
  struct Part {
    std::string label;
    Graph graph;
    CompileOptions options;
  };
  // The output `value` of program `from` is the input `input` of program `to` (a later one).
  struct Handoff {
    int from;
    ValueId value;
    int to;
    ValueId input;
  };
  struct Feed {
    int program;
    ValueId value;
    Tensor tensor;
  };

  // Lowers each part as it is added and frees its graph at once, so that building a
  // schedule never holds more than one program's graph: the heap then stays about the
  // size of the tables that are kept, instead of growing to every graph of the step and
  // leaving holes between the kept tables when they are freed.
  class Builder {
   public:
    // Returns the program's index in the schedule.
    int add(Part part);
    size_t size() const { return programs_.size(); }

   private:
    friend class Schedule;
    std::vector<Program> programs_;
    std::vector<std::string> labels_;
  };

  Schedule() = default;
  Schedule(Builder programs, std::vector<Handoff> handoffs, std::vector<std::pair<int, ValueId>> keep = {},
           planner::Strategy strategy = planner::Strategy::best);
  Schedule(std::vector<Part> parts, std::vector<Handoff> handoffs, std::vector<std::pair<int, ValueId>> keep = {},
           planner::Strategy strategy = planner::Strategy::best);

  size_t arena_bytes() const { return plan_.arena_bytes; }
  size_t lower_bound_bytes() const { return plan_.lower_bound_bytes; }
  const planner::Plan& plan() const { return plan_; }
  // Every buffer of every program, steps numbered across the schedule.
  const std::vector<planner::BufferRequest>& buffers() const { return buffers_; }
  const planner::ChoiceTree& choices() const { return tree_; }
  // Bytes of the handed values (each counted once; their lives are in the plan).
  size_t handed_bytes() const { return handed_bytes_; }
  size_t num_programs() const { return programs_.size(); }
  const Program& program(size_t i) const { return programs_[i]; }
  const std::string& label(size_t i) const { return labels_[i]; }
  // The first step of program i in the schedule's numbering.
  int32_t first_step(size_t i) const { return first_step_[i]; }
  // Heap bytes of the programs' step tables: what running needs besides the arena.
  size_t table_bytes() const;
  // Heap bytes of what only planning and reports need (the buffer list, offsets).
  size_t planning_bytes() const;
  // Frees them: buffers() and plan().offsets become empty. For holders that only run.
  void release_planning_data();

  // Runs every program in order; `feeds` are the inputs not handed on, by program.
  // Allocates nothing (unless profiled).
  void run(Arena& arena, const ParamStore& params, std::span<const Feed> feeds, const GateValues* gates = nullptr,
           Profile* profile = nullptr);
  Tensor output(const Arena& arena, int program, ValueId value) const;

 private:
  std::vector<Program> programs_;
  std::vector<std::string> labels_;
  std::vector<int32_t> first_step_;
  std::vector<planner::BufferRequest> buffers_;
  planner::ChoiceTree tree_;
  planner::Plan plan_;
  size_t handed_bytes_ = 0;
  std::vector<graph::Feed> scratch_;  // one program's feeds, reused every run
};

}  // namespace onnas::graph
