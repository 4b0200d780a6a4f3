#include "nas/search_space.h"

#include <algorithm>
#include <iterator>

#include "runtime/error.h"

namespace onnas::nas {

namespace {
constexpr OpKind kAllOps[] = {
#define ONNAS_CANDIDATE(kind, name, relu) OpKind::kind,
#include "nas/candidate_ops.inc"
#undef ONNAS_CANDIDATE
};
constexpr const char* kOpNames[] = {
#define ONNAS_CANDIDATE(kind, name, relu) name,
#include "nas/candidate_ops.inc"
#undef ONNAS_CANDIDATE
};
static_assert(std::size(kAllOps) == kNumOpKinds && std::size(kOpNames) == kNumOpKinds);
}  // namespace

const char* op_kind_name(OpKind k) {
  const int i = int(k);
  return i >= 0 && i < kNumOpKinds ? kOpNames[i] : "?";
}

OpKind op_kind_from_name(const std::string& name) {
  for (OpKind k : kAllOps)
    if (name == op_kind_name(k)) return k;
  std::string known;
  for (OpKind k : kAllOps) known += std::string(known.empty() ? "" : ", ") + op_kind_name(k);
  fail("unknown op '{}' (known: {})", name, known);
}

std::vector<OpKind> few_shot_ops() {
  return {OpKind::max_pool_3x3, OpKind::avg_pool_3x3, OpKind::skip_connect, OpKind::conv_1x5_5x1,
          OpKind::conv_3x3,     OpKind::sep_conv_3x3, OpKind::dil_conv_3x3};
}

std::vector<OpKind> darts_ops() {
  return {OpKind::none,         OpKind::max_pool_3x3, OpKind::avg_pool_3x3, OpKind::skip_connect,
          OpKind::sep_conv_3x3, OpKind::sep_conv_5x5, OpKind::dil_conv_3x3, OpKind::dil_conv_5x5};
}

int SearchSpace::num_edges() const { return first_edge(nodes); }

int SearchSpace::first_edge(int node) const {
  int e = 0;
  for (int j = 0; j < node; ++j) e += 2 + j;
  return e;
}

std::vector<std::pair<int, int>> SearchSpace::pairs(int node) const {
  std::vector<std::pair<int, int>> p;
  for (int a = 0; a < 2 + node; ++a)
    for (int b = a + 1; b < 2 + node; ++b) p.emplace_back(a, b);
  return p;
}

bool SearchSpace::is_reduction(int cell) const {
  return std::find(reductions.begin(), reductions.end(), cell) != reductions.end();
}

int SearchSpace::cell_channels(int cell) const {
  int c = channels;
  for (int i = 0; i <= cell; ++i)
    if (is_reduction(i)) c *= 2;
  return c;
}

std::pair<int, int> SearchSpace::cell_input_size(int cell) const {
  int h = height, w = width;
  for (int i = 0; i < cell; ++i)
    if (is_reduction(i)) h /= 2, w /= 2;
  return {h, w};
}

void SearchSpace::validate() const {
  if (ops.empty()) fail("search space: no candidate ops");
  for (size_t i = 0; i < ops.size(); ++i)
    for (size_t j = i + 1; j < ops.size(); ++j)
      if (ops[i] == ops[j]) fail("search space: op {} is listed twice", op_kind_name(ops[i]));
  if (nodes < 1) fail("search space: nodes must be at least 1 (got {})", nodes);
  if (cells < 1) fail("search space: cells must be at least 1 (got {})", cells);
  if (channels < 2 || channels % 2) fail("search space: channels must be even and at least 2 (got {})", channels);
  if (in_channels < 1 || classes < 2) fail("search space: need at least 1 input channel and 2 classes");
  for (int r : reductions)
    if (r < 0 || r >= cells) fail("search space: reduction cell {} is outside 0..{}", r, cells - 1);
  int h = height, w = width;
  for (int i = 0; i < cells; ++i) {
    if (is_reduction(i)) {
      if (h < 2 || w < 2 || h % 2 || w % 2)
        fail("search space: input {}x{} cannot flow through the network: cell {} reduces a {}x{} map, which must be "
             "even and at least 2 (use an input whose sides divide by 2^{})",
             height, width, i, h, w, int(reductions.size()));
      h /= 2, w /= 2;
    }
  }
}

std::string SearchSpace::describe() const {
  std::string ops_s;
  for (OpKind k : ops) ops_s += std::string(ops_s.empty() ? "" : ",") + op_kind_name(k);
  std::string red;
  for (int r : reductions) red += std::string(red.empty() ? "" : ",") + std::to_string(r);
  return fmt::format("C={} cells={} reductions={} nodes={} input={}x{}x{} classes={} ops={}", channels, cells, red,
                     nodes, in_channels, height, width, classes, ops_s);
}

nlohmann::json SearchSpace::to_json() const {
  std::vector<std::string> op_names;
  for (OpKind k : ops) op_names.push_back(op_kind_name(k));
  return {{"ops", op_names},         {"nodes", nodes},
          {"cells", cells},          {"reductions", reductions},
          {"channels", channels},    {"stem_multiplier", stem_multiplier},
          {"in_channels", in_channels}, {"height", height},
          {"width", width},          {"classes", classes}};
}

SearchSpace SearchSpace::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: search space: expected a JSON object", source);
  SearchSpace s;
  auto integer = [&](const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < -1 || it->get<int64_t>() > (1 << 20))
      fail("{}: search space: \"{}\" is missing or not a sane integer", source, key);
    return it->get<int>();
  };
  s.nodes = integer("nodes");
  s.cells = integer("cells");
  s.channels = integer("channels");
  s.stem_multiplier = integer("stem_multiplier");
  s.in_channels = integer("in_channels");
  s.height = integer("height");
  s.width = integer("width");
  s.classes = integer("classes");
  auto ops_it = j.find("ops");
  auto red_it = j.find("reductions");
  if (ops_it == j.end() || !ops_it->is_array()) fail("{}: search space: \"ops\" is missing or not a list", source);
  if (red_it == j.end() || !red_it->is_array())
    fail("{}: search space: \"reductions\" is missing or not a list", source);
  s.ops.clear();
  for (const auto& o : *ops_it) {
    if (!o.is_string()) fail("{}: search space: an op name is not a string", source);
    s.ops.push_back(op_kind_from_name(o.get<std::string>()));
  }
  s.reductions.clear();
  for (const auto& r : *red_it) {
    if (!r.is_number_integer()) fail("{}: search space: a reduction index is not an integer", source);
    s.reductions.push_back(r.get<int>());
  }
  if (s.stem_multiplier < 1) fail("{}: search space: stem_multiplier must be at least 1", source);
  try {
    s.validate();
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
  return s;
}

}  // namespace onnas::nas
