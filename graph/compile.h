// compile(): from a Graph to a Program that knows, before it runs, every byte it
// will use. The phases, each a function of the last:
//
//   1. add accumulate_grad nodes for the requested parameter gradients;
//   2. dead-code elimination (keep what the outputs and side effects need);
//   3. order: the build order, or a greedy memory-aware topological order, whichever
//      has the lower peak of live bytes (both are reported);
//   4. liveness: each arena value lives from its producer's step to its last
//      consumer's step (outputs to the end); each node's workspace for its step;
//   5. in-place marking: an op's output may take over an input that dies there;
//   6. memory plan (memory_planner/): an offset per buffer, the arena size;
//   7. binding tables for run().
//
//   Program p = compile(g, {.outputs = {loss}, .param_grads = {{w, dw}}});
//   Arena arena(p.arena_bytes());
//   p.run(arena, params, {{x, images}, {y, labels}});
//   float loss = p.output(arena, loss).f32()[0];
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "memory_planner/planner.h"
#include "runtime/param_store.h"
#include "runtime/tensor.h"

namespace onnas::graph {

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
  std::vector<std::pair<ValueId, ValueId>> param_grads;  // (param, gradient): params.grad += gradient
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
  size_t arena_bytes() const { return plan_.arena_bytes; }
  size_t lower_bound_bytes() const { return plan_.lower_bound_bytes; }
  // The lower bound of the plain build order (for comparison with the chosen order).
  size_t build_order_lower_bound_bytes() const { return build_order_lower_bound_; }
  const planner::Plan& plan() const { return plan_; }
  const std::vector<planner::BufferRequest>& buffers() const { return buffers_; }
  const std::vector<NodeId>& order() const { return order_; }
  const Graph& graph() const { return graph_; }
  // Bytes of the ParamStore tensors this program reads or writes (weights, grads, state).
  size_t persistent_bytes(const ParamStore& params) const;
  // The parameters whose gradients this program accumulates (names without "@grad").
  std::vector<std::string> grad_params() const;

  // Runs every node in order in `arena` (at least arena_bytes()). Parameters are
  // looked up by name in `params` (again when the store's version() changes),
  // gradients accumulate into params.grad(). Allocates nothing.
  // With `profile`, each node's time is added to it under the node's op name.
  void run(Arena& arena, const ParamStore& params, std::span<const Feed> feeds, Profile* profile = nullptr);
  void run(Arena& arena, const ParamStore& params, std::initializer_list<Feed> feeds, Profile* profile = nullptr) {
    run(arena, params, std::span<const Feed>(feeds.begin(), feeds.size()), profile);
  }
  // A view of an output (or any arena value still live at the end) after run().
  Tensor output(const Arena& arena, ValueId v) const;

 private:
  friend Program compile(const Graph& g, const CompileOptions& options);
  struct Step {
    NodeId node;
    uint32_t first_arg;  // into args_: inputs then outputs
    uint32_t num_inputs, num_outputs;
    int64_t workspace_offset;  // -1: none
  };
  void bind(const ParamStore& params);
  void check_inputs_finite(const ParamStore& params, std::span<const Feed> feeds) const;
  void check_step_finite(size_t step) const;

  Graph graph_;
  std::vector<NodeId> order_;
  std::vector<Step> steps_;
  std::vector<ValueId> arg_values_;     // per step argument: the value
  std::vector<Tensor> args_;            // per step argument: the bound tensor (scratch)
  std::vector<int64_t> value_offset_;   // per value: arena offset, -1 if not in the arena
  std::vector<ValueId> inputs_;         // values of kind input
  std::vector<planner::BufferRequest> buffers_;
  std::vector<ValueId> buffer_value_;   // per buffer: its value, or kNoValue for workspaces
  planner::Plan plan_;
  size_t build_order_lower_bound_ = 0;
  std::vector<Tensor> bound_;           // per value: its tensor for params / param grads
  const ParamStore* bound_store_ = nullptr;
  uint64_t bound_version_ = 0;  // the store's version() when bound
};

Program compile(const Graph& g, const CompileOptions& options);

}  // namespace onnas::graph
