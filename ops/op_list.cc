#include "ops/op_list.h"

#include <iterator>

namespace onnas::ops {
namespace {

const graph::OpDef* const kAllOps[] = {
#define ONNAS_OP(kind, def, name) &def,
#include "ops/op_list.inc"
#undef ONNAS_OP
};

constexpr std::string_view kOpNames[] = {
#define ONNAS_OP(kind, def, name) name,
#include "ops/op_list.inc"
#undef ONNAS_OP
};

static_assert(std::size(kAllOps) == kNumOps && std::size(kOpNames) == kNumOps,
              "ops/op_list.inc generates one definition and one name per op kind");

}  // namespace

std::span<const graph::OpDef* const> all_ops() { return kAllOps; }

const graph::OpDef& op_def(OpKind kind) { return *kAllOps[size_t(kind)]; }

std::string_view op_name(OpKind kind) { return kOpNames[size_t(kind)]; }

const graph::OpDef* find_op(std::string_view name) {
  for (const graph::OpDef* op : kAllOps)
    if (name == op->name) return op;
  return nullptr;
}

}  // namespace onnas::ops
