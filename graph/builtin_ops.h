// The few ops the graph engine itself needs: add_n sums gradient contributions
// (autodiff's fan-out), accumulate_grad adds a gradient into its ParamStore gradient
// (compile's param_grads). ops/ builds the user-facing `sum` on add_n.
#pragma once

#include <span>
#include <string>

#include "graph/op.h"

namespace onnas::graph {

extern const OpDef kAddN;
extern const OpDef kAddNGated;
extern const OpDef kAccumulateGrad;
extern const OpDef kFill;

// y = sum of values (all of one type). One value is returned as is.
ValueId add_n(Graph& g, std::span<const ValueId> values, const std::string& name);
// y = sum of the values whose gate is open in the run (autodiff's sum of gradient
// contributions that exist under different gates). The node runs when any is open.
ValueId add_n_gated(Graph& g, std::span<const ValueId> values, std::span<const GateId> gates, const std::string& name);
// A tensor of `type` filled with `value` (the seed of a scalar loss).
ValueId fill(Graph& g, const TensorType& type, float value, const std::string& name);
// params.grad(param) += grad, as a side-effect node, under the gate of `grad`.
void accumulate_grad(Graph& g, ValueId param, ValueId grad);

}  // namespace onnas::graph
