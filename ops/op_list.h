// The op library's table: every OpDef of ops/, generated from ops/op_list.inc (the one
// place op kinds are listed). Tools and tests walk it (dumps, "every op has a
// gradient check"); the graph engine itself never needs it, since nodes point at
// their OpDef directly.
//
//   for (const graph::OpDef* op : ops::all_ops()) fmt::print("{}\n", op->name);
//   const graph::OpDef* conv = ops::find_op("conv2d");
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "graph/op.h"

namespace onnas::ops {

#define ONNAS_OP(kind, def, name) extern const graph::OpDef def;
#include "ops/op_list.inc"
#undef ONNAS_OP

enum class OpKind : int {
#define ONNAS_OP(kind, def, name) kind,
#include "ops/op_list.inc"
#undef ONNAS_OP
};

inline constexpr size_t kNumOps = 0
#define ONNAS_OP(kind, def, name) +1
#include "ops/op_list.inc"
#undef ONNAS_OP
    ;

std::span<const graph::OpDef* const> all_ops();
const graph::OpDef& op_def(OpKind kind);
std::string_view op_name(OpKind kind);  // the name listed in op_list.inc
// The OpDef called `name`, or nullptr.
const graph::OpDef* find_op(std::string_view name);

}  // namespace onnas::ops
