#include "nas/head.h"

#include <cstring>

#include "runtime/error.h"

namespace onnas::nas {

HeadInit parse_head_init(std::string_view name) {
  if (name == "meta") return HeadInit::meta;
  if (name == "zero") return HeadInit::zero;
  fail("unknown classifier start '{}' (choose meta or zero)", name);
}

const char* head_init_name(HeadInit h) {
  switch (h) {
    case HeadInit::meta: return "meta";
    case HeadInit::zero: return "zero";
  }
  return "?";
}

bool is_head_param(const std::string& name) { return name.starts_with("classifier."); }

void zero_head(ParamStore& params) {
  for (const auto& en : params.entries())
    if (en->kind == ParamKind::weight && is_head_param(en->name)) std::memset(en->tensor.data(), 0, en->tensor.bytes());
}

}  // namespace onnas::nas
