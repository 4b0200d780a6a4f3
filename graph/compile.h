// compile(): from a Graph to a Program that knows, before it runs, every byte it
// will use. The phases, each a function of the last:
//
//   1. add accumulate_grad nodes for the requested parameter gradients;
//   2. dead-code elimination (keep what the outputs and side effects need);
//   3. order: the build order, or a greedy memory-aware topological order, whichever
//      has the lower peak of live bytes (both are reported);
//   4. liveness: each arena value lives from its producer's step to its last
//      consumer's step (outputs to the end); each node's workspace for its step. A
//      value read later only by nodes behind a run-time gate (graph/gates.h) gets two
//      places: a short one for the runs where the gate is closed, and one in the
//      gate's share of a choice region for the runs where it is open;
//   5. in-place marking: an op's output may take over an input that dies there;
//   6. memory plan (memory_planner/, with choices.h for gated values): an offset per
//      buffer, the arena size, sound for every admissible run;
//   7. a compact step table for run(): op, attributes, argument offsets, shapes, gate.
//      The program does not keep the graph it came from.
//
//   Program p = compile(g, {.outputs = {loss}, .param_grads = {{w, dw}}});
//   Arena arena(p.arena_bytes());
//   p.run(arena, params, {{x, images}, {y, labels}});
//   float loss = p.output(arena, loss).f32()[0];
//
// Threading: run() uses the oneTBB arena for the kernels, but a Program is not
// re-entrant: its argument table is scratch written by run(), so two threads must not
// run the same Program at once (a debug check catches it); distinct Programs may run
// concurrently in distinct arenas.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/gates.h"
#include "graph/ir.h"
#include "memory_planner/choices.h"
#include "memory_planner/planner.h"
#include "runtime/param_store.h"
#include "runtime/tensor.h"

namespace onnas::graph {

struct OpDef;

struct Feed {
  ValueId value;
  Tensor tensor;
};

// Time per op kind, accumulated over the runs it is passed to (opt-in: a run
// without a profile reads no clock). Entries are created on first use, so a
// profiled run may allocate; an unprofiled one never does.
struct Profile {
  struct Entry {
    std::string op;
    int64_t calls = 0;
    double seconds = 0;
  };
  std::vector<Entry> entries;  // in order of first appearance
  void add(const char* op, double seconds);
  double total_seconds() const;
  // The ops by time, largest first, as an aligned table (top `rows`).
  std::string table(size_t rows = 15) const;
};

struct CompileOptions {
  std::vector<ValueId> outputs;                          // readable after run()
  std::vector<std::pair<ValueId, ValueId>> param_grads = {};  // (param, gradient): params.grad += gradient
  planner::Strategy strategy = planner::Strategy::best;
  bool reorder = true;  // memory-aware order; false keeps the build order
  bool inplace = true;  // let outputs take over dying inputs
};

// The numerics check (`--check-numerics` in the tools): while on, every run() scans
// its feeds and parameters before the first op and each op's f32 outputs after it,
// and throws onnas::Error naming the first op that produced a NaN or an infinity
// (its node, output value and the first bad element). Off by default: it reads
// every byte the program writes.
void set_check_numerics(bool on);
bool check_numerics();

class Program {
 public:
  Program();
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  ~Program();

  size_t arena_bytes() const { return plan_.arena_bytes; }
  size_t lower_bound_bytes() const { return plan_.lower_bound_bytes; }
  // The lower bound of the plain build order (for comparison with the chosen order).
  size_t build_order_lower_bound_bytes() const { return build_order_lower_bound_; }
  const planner::Plan& plan() const { return plan_; }
  const std::vector<planner::BufferRequest>& buffers() const { return buffers_; }
  // The run-time choices (gate leaves) this program's memory depends on; empty without gates.
  const planner::ChoiceTree& choices() const { return tree_; }
  // The gate of each choice of choices().
  const std::vector<GateId>& choice_gates() const { return choice_gate_; }
  const std::shared_ptr<GateSpace>& gates() const { return gates_; }

  // The steps in run order, each a node of the source graph.
  size_t num_steps() const { return steps_.size(); }
  const std::vector<NodeId>& order() const { return order_; }
  const char* step_op(size_t s) const;
  std::string_view step_name(size_t s) const;
  bool step_backward(size_t s) const { return steps_[s].backward; }
  GateId step_gate(size_t s) const { return steps_[s].gate; }
  std::span<const ValueId> step_inputs(size_t s) const;
  std::span<const ValueId> step_outputs(size_t s) const;
  // Values, by the source graph's ids.
  size_t num_values() const { return vals_.size(); }
  const TensorType& type(ValueId v) const { return types_[vals_[size_t(v)].type]; }
  ValueKind kind(ValueId v) const { return vals_[size_t(v)].kind; }
  std::string_view name(ValueId v) const;
  int32_t producer_step(ValueId v) const { return vals_[size_t(v)].producer_step; }

  // Bytes of the ParamStore tensors this program reads or writes (weights, grads, state).
  size_t persistent_bytes(const ParamStore& params) const;
  // The parameters whose gradients this program accumulates (names without "@grad"),
  // and the gate under which each accumulation runs.
  std::vector<std::string> grad_params() const;
  struct GradTarget {
    std::string param;
    GateId gate;
  };
  std::vector<GradTarget> grad_targets() const;
  // Heap bytes of the step tables: what running needs besides the arena.
  size_t table_bytes() const;
  // Heap bytes of what only planning and reports need: the buffer list and its offsets.
  size_t planning_bytes() const;
  // Frees the buffer list and offsets (buffers() and plan().offsets become empty);
  // running does not need them. For holders that only run the program.
  void release_planning_data();

  // Runs every node in order in `arena` (at least arena_bytes()), skipping the nodes
  // whose gate is closed in `gates` (nullptr: every gate open; a program whose memory
  // depends on choices needs them). Parameters are looked up by name in `params` when
  // the store's layout changes; gradients accumulate into params.grad(). Allocates
  // nothing. With `profile`, each node's time is added to it under its op's name.
  void run(Arena& arena, const ParamStore& params, std::span<const Feed> feeds, const GateValues* gates = nullptr,
           Profile* profile = nullptr);
  void run(Arena& arena, const ParamStore& params, std::initializer_list<Feed> feeds,
           const GateValues* gates = nullptr, Profile* profile = nullptr) {
    run(arena, params, std::span<const Feed>(feeds.begin(), feeds.size()), gates, profile);
  }
  // Runs only the first `steps` steps in run order (no gates): a prefix of the order is
  // itself runnable, since every step's inputs come from steps before it. For measuring
  // early values without computing the rest (nas/chunked_eval.h). Values produced by
  // the prefix that are outputs are readable after it.
  void run_prefix(Arena& arena, const ParamStore& params, std::initializer_list<Feed> feeds, size_t steps);
  // A view of an output (or any arena value still live at the end) after run().
  Tensor output(const Arena& arena, ValueId v) const;

 private:
  friend Program compile(const Graph& g, const CompileOptions& options);
  friend Program lower(const Graph& g, const CompileOptions& options);
  friend Program lower_in_order(const Graph& g, const CompileOptions& options, const std::vector<bool>& is_output,
                                std::vector<NodeId> order, size_t build_order_bound, bool gated_temporaries);
  friend class Schedule;

  struct Step {
    const OpDef* op = nullptr;
    const AttrsType* attrs_type = nullptr;  // nullptr: the node had none
    uint32_t attrs_at = 0;                   // into attrs_: the step's copy of its node's attributes
    uint32_t first_arg = 0;    // into arg_values_: inputs then outputs
    uint32_t num_inputs = 0, num_outputs = 0;
    int64_t workspace_offset = -1;   // from its choice's base when workspace_choice >= 0
    int32_t workspace_buffer = -1, workspace_choice = -1;
    GateId gate = kAlways;
    uint32_t name_at = 0, name_len = 0;  // into names_
    bool backward = false;
    bool writes_param_grad = false;  // its output storage is a ParamStore gradient
  };
  // 48 bytes: a program of a search step has a thousand or more values, and its type
  // (shape and dtype, 64 bytes alone) is one of a few dozen distinct ones, kept once in
  // types_.
  struct Val {
    int64_t offset = -1;         // arena offset (from home's base, if any), -1: not in the arena
    int64_t choice_offset = 0;   // from its choice's base, when the choice is open
    int32_t buffer = -1;         // its buffer; with a choice, the choice's buffer is the next one
    int32_t producer_step = -1, last_step = -1;
    int32_t binding = -1;        // into bindings_: parameters, their gradients, inputs
    uint32_t name_at = 0;
    uint16_t type = 0;           // into types_
    int16_t home = -1;           // the choice its producer runs under (it exists only then), or -1
    int16_t choice = -1;         // the choice (of tree_) whose runs keep it longer, or -1
    uint16_t name_len = 0;
    ValueKind kind = ValueKind::activation;
    bool handed = false;         // an input whose storage another program of a schedule wrote
  };
  const TensorType& type_of(const Val& v) const { return types_[v.type]; }
  struct Binding {
    uint32_t name_at = 0, name_len = 0;  // the store's name (without "@grad")
    bool grad = false;
    const ParamStore::Entry* entry = nullptr;  // resolved by bind()
  };

  void shrink_tables();  // capacities to sizes, once lowering is done
  // Offsets of the values from plan_ (after planning alone or in a schedule).
  void apply_plan();
  void bind(const ParamStore& params);
  Tensor tensor_of(ValueId v, std::byte* base) const;
  int64_t base_of(int32_t choice) const;
  void check_inputs_finite(const ParamStore& params, std::span<const Feed> feeds) const;
  void check_step_finite(size_t step) const;

  std::vector<Step> steps_;
  std::vector<NodeId> order_;
  std::vector<ValueId> arg_values_;    // per step argument: the value
  std::vector<Tensor> args_;           // the running step's tensors (scratch, as wide as the widest step)
  size_t step_limit_ = SIZE_MAX;       // run() stops before this step (run_prefix)
  std::vector<Val> vals_;
  std::vector<TensorType> types_;      // the distinct types of vals_
  std::vector<ValueId> inputs_;        // values of kind input that some step reads
  std::vector<Binding> bindings_;
  std::vector<Tensor> bound_;          // per binding: this run's tensor (scratch)
  std::string names_;                  // every name, one after the other
  AttrsTable attrs_;                   // every step's attributes, one after the other
  std::vector<planner::BufferRequest> buffers_;
  planner::ChoiceTree tree_;
  std::vector<GateId> choice_gate_;
  std::vector<uint8_t> choice_open_;   // scratch per run
  std::vector<int64_t> choice_base_;   // scratch per run (kept for output())
  planner::Plan plan_;
  size_t build_order_lower_bound_ = 0;
  std::shared_ptr<GateSpace> gates_;
  const ParamStore* bound_store_ = nullptr;
  uint64_t bound_layout_ = 0;          // the store's layout_version() when bound
  std::unique_ptr<std::atomic<bool>> running_;  // the re-entrancy check
};

// Seconds this process has spent compiling programs (lowering and planning), for
// measurements: a search step that compiles nothing leaves it unchanged.
double compile_seconds_total();

Program compile(const Graph& g, const CompileOptions& options);
// compile() without the memory plan (steps, liveness and buffers only), for a
// Schedule that plans several programs together (graph/schedule.h).
Program lower(const Graph& g, const CompileOptions& options);

}  // namespace onnas::graph
