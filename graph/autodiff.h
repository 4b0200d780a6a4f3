// Reverse-mode autodiff as a graph rewrite: backward() appends the backward graph
// and returns the gradient value of each requested value. Each op's gradient rule
// emits ordinary nodes, only for inputs that need a gradient, so the planner and
// the executor treat forward and backward alike.
//
//   auto grads = backward(g, loss, {w1, w2});                // seed: d loss = 1
//   auto grads = backward(g, {{cell_out, saved_grad}}, wrt); // seeded (step-by-step)
//
// Only nodes on a path from some `wrt` to some seed get gradient nodes; ops with
// blocks_gradient (stop_gradient) cut the path, so nothing behind them keeps
// activations for the backward. Contributions to a value used several times are
// summed (add_n) in a fixed order. A wrt value that the seeds do not depend on gets
// kNoValue (its gradient is zero).
#pragma once

#include <span>
#include <vector>

#include "graph/ir.h"

namespace onnas::graph {

struct Seed {
  ValueId value;     // a forward value
  ValueId gradient;  // its gradient (same type); kNoValue = ones (for a scalar loss)
};

std::vector<ValueId> backward(Graph& g, std::span<const Seed> seeds, std::span<const ValueId> wrt);
std::vector<ValueId> backward(Graph& g, ValueId loss, std::span<const ValueId> wrt);
inline std::vector<ValueId> backward(Graph& g, ValueId loss, std::initializer_list<ValueId> wrt) {
  return backward(g, loss, std::span<const ValueId>(wrt.begin(), wrt.size()));
}

}  // namespace onnas::graph
