#include "nas/meta_cell.h"

#include <algorithm>
#include <cstring>

#include "nas/network.h"
#include "nas/space_limits.h"
#include "runtime/error.h"
#include "runtime/serialize/json.h"

namespace onnas::nas {
namespace {

// "cells.3.pre0.conv.weight" -> (3, "pre0.conv.weight"); (-1, "") for other names.
std::pair<int, std::string> split_cell_name(const std::string& name) {
  constexpr std::string_view prefix = "cells.";
  if (name.compare(0, prefix.size(), prefix) != 0) return {-1, ""};
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return {-1, ""};
  int cell = 0;
  for (size_t k = prefix.size(); k < dot; ++k) {
    if (name[k] < '0' || name[k] > '9') return {-1, ""};
    cell = cell * 10 + (name[k] - '0');
  }
  return {cell, name.substr(dot + 1)};
}

std::string cell_param_name(int cell, const std::string& suffix) { return fmt::format("cells.{}.{}", cell, suffix); }

// Calls fn(meta_offset, cell_offset, row_length) for every innermost row of `small`
// inside the leading slice of `big`.
template <typename Fn>
void for_each_slice_row(const Shape& big, const Shape& small, Fn fn) {
  ONNAS_CHECK(big.rank() == small.rank() && small.rank() >= 1, "meta cell: slice {} of {}: ranks differ", small.str(),
              big.str());
  const int r = small.rank();
  for (int d = 0; d < r; ++d)
    ONNAS_CHECK(small[d] <= big[d], "meta cell: slice {} does not fit in {}", small.str(), big.str());
  if (small.numel() == 0) return;
  std::vector<int64_t> index(size_t(r), 0), big_stride(size_t(r), 1);
  for (int d = r - 2; d >= 0; --d) big_stride[size_t(d)] = big_stride[size_t(d) + 1] * big[d + 1];
  const int64_t row = small[r - 1];
  const int64_t rows = small.numel() / row;
  for (int64_t k = 0; k < rows; ++k) {
    int64_t off = 0;
    for (int d = 0; d < r - 1; ++d) off += index[size_t(d)] * big_stride[size_t(d)];
    fn(off, k * row, row);
    for (int d = r - 2; d >= 0; --d) {
      if (++index[size_t(d)] < small[d]) break;
      index[size_t(d)] = 0;
    }
  }
}

bool is_cell_weight(const ParamStore::Entry& e) { return e.kind == ParamKind::weight && split_cell_name(e.name).first >= 0; }

// Adds cell `cell`'s weight `suffix` of shape `s` to the layout: one entry per suffix,
// of the largest size per dimension over the cells that hold it.
void add_to_layout(std::vector<MetaCell::Entry>& entries, std::map<std::string, size_t>& index, int cell,
                   const std::string& suffix, const Shape& s) {
  auto [it, fresh] = index.emplace(suffix, entries.size());
  if (fresh) {
    entries.push_back({suffix, s, Buffer(), {}});
  } else {
    Shape& m = entries[it->second].shape;
    if (m.rank() != s.rank()) fail("meta cell: {} has rank {} in one cell and {} in another", suffix, s.rank(), m.rank());
    for (int d = 0; d < s.rank(); ++d) m[d] = std::max(m[d], s[d]);
  }
  entries[it->second].cells.push_back(cell);
}

}  // namespace

void copy_leading_slice(const float* meta, const Shape& big, float* cell, const Shape& small) {
  for_each_slice_row(big, small, [&](int64_t mo, int64_t co, int64_t n) {
    std::memcpy(cell + co, meta + mo, size_t(n) * sizeof(float));
  });
}

void write_leading_slice(float* meta, const Shape& big, const float* cell, const Shape& small) {
  for_each_slice_row(big, small, [&](int64_t mo, int64_t co, int64_t n) {
    std::memcpy(meta + mo, cell + co, size_t(n) * sizeof(float));
  });
}

MetaCell MetaCell::from_cells(const SearchSpace& space, const ParamStore& params) {
  MetaCell mc;
  std::map<std::string, size_t> index;
  for (const auto& e : params.entries()) {
    if (!is_cell_weight(*e)) continue;
    auto [cell, suffix] = split_cell_name(e->name);
    if (cell >= space.cells) fail("meta cell: {} names a cell beyond the space's {} cells", e->name, space.cells);
    add_to_layout(mc.entries_, index, cell, suffix, e->tensor.shape());
  }
  if (mc.entries_.empty()) fail("meta cell: the store holds no cell weights (cells.{{i}}.*)");
  for (Entry& e : mc.entries_) {
    e.data = Buffer(size_t(e.shape.numel()) * sizeof(float));
    std::memset(e.data.data(), 0, e.data.bytes());
    for (int cell : e.cells) {
      Tensor t = params.get(cell_param_name(cell, e.suffix));
      write_leading_slice(static_cast<float*>(e.data.data()), e.shape, t.f32(), t.shape());
    }
  }
  return mc;
}

const MetaCell::Entry* MetaCell::find(const std::string& suffix) const {
  for (const Entry& e : entries_)
    if (e.suffix == suffix) return &e;
  return nullptr;
}

void MetaCell::unfold(ParamStore& params) const {
  for (const Entry& e : entries_)
    for (int cell : e.cells) {
      Tensor t = params.get(cell_param_name(cell, e.suffix));
      copy_leading_slice(static_cast<const float*>(e.data.data()), e.shape, t.f32(), t.shape());
    }
}

void MetaCell::fold(const ParamStore& params, const CellFoldOptions& o) {
  for (Entry& e : entries_) {
    float* meta = static_cast<float*>(e.data.data());
    const size_t n = size_t(e.shape.numel());
    FoldAverage avg(n, o.weighting);
    std::vector<float> diff;
    for (int cell : e.cells) {
      Tensor t = params.get(cell_param_name(cell, e.suffix));
      const float* w = t.f32();
      for_each_slice_row(e.shape, t.shape(), [&](int64_t mo, int64_t co, int64_t len) {
        diff.resize(size_t(len));
        for (int64_t k = 0; k < len; ++k) diff[size_t(k)] = w[co + k] - meta[mo + k];
        avg.add(size_t(mo), diff);
      });
    }
    for (size_t i = 0; i < n; ++i) meta[i] += o.lr * o.multiplier * avg.average(i);
  }
}

size_t MetaCell::bytes() const {
  size_t b = 0;
  for (const Entry& e : entries_) b += e.data.bytes();
  return b;
}

size_t MetaCell::cells_bytes(const SearchSpace& space, const ParamStore& params) {
  size_t b = 0;
  for (const auto& e : params.entries())
    if (is_cell_weight(*e) && split_cell_name(e->name).first < space.cells) b += e->tensor.bytes();
  return b;
}

void save_meta_cell(const std::string& path, const SearchSpace& space, const ParamStore& params, const MetaCell& cell,
                    const std::map<std::string, std::string>& metadata) {
  std::vector<NamedTensor> tensors;
  for (const auto& e : params.entries()) {
    if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
    if (is_cell_weight(*e)) continue;  // the meta cell stands for them
    tensors.push_back({e->name, e->tensor});
  }
  for (const MetaCell::Entry& e : cell.entries())
    tensors.push_back({kMetaCellPrefix + e.suffix, Tensor(const_cast<void*>(static_cast<const void*>(e.data.data())),
                                                          e.shape)});
  std::map<std::string, std::string> md = metadata;
  md["format"] = kMetaCellFormat;
  md["version"] = std::to_string(kMetaCellVersion);
  md["search_space"] = space.to_json().dump();
  std::vector<int> widths;
  for (int i = 0; i < space.cells; ++i) widths.push_back(space.cell_channels(i));
  md["cell_widths"] = nlohmann::json(widths).dump();
  md["meta_cell_bytes"] = std::to_string(cell.bytes());
  md["cells_bytes"] = std::to_string(MetaCell::cells_bytes(space, params));
  write_safetensors(path, tensors, md);
}

namespace {

// The search space of a meta cell file, from its "search_space" metadata: every field
// bounded (space_limits.h), and a supernet's space.
SearchSpace meta_cell_space(const std::string& text, const std::string& path) {
  const std::string source = fmt::format("{}: search_space metadata", path);
  const nlohmann::json j = parse_json(text, source, {.max_depth = 2, .max_array = kMaxCells});
  SearchSpace space = bounded_space_from_json(j, source, path);
  try {
    check_supernet_space(space);
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
  return space;
}

}  // namespace

MetaCellFile load_meta_cell(const std::string& path, ParamStore& params) {
  SafetensorsFile f = read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end()) fail("{}: not a meta cell file (no \"{}\" in its metadata)", path, key);
    return it->second;
  };
  if (meta("format") != kMetaCellFormat) fail("{}: not a meta cell file (format \"{}\")", path, meta("format"));
  if (meta("version") != std::to_string(kMetaCellVersion))
    fail("{}: meta cell version {} (this build reads version {})", path, meta("version"), kMetaCellVersion);
  MetaCellFile out{meta_cell_space(meta("search_space"), path), f.metadata, MetaCell()};

  // The supernet of this space as a graph: its parameters' names and shapes, nothing
  // allocated yet. Every tensor the space needs must be in the file with that shape
  // (the meta cell's at the largest size over the cells), and nothing else may be,
  // before the first byte of the supernet is allocated: what a file can make us
  // allocate is bounded by its own tensors times the number of cells.
  graph::Graph g;
  emit_search_net(g, out.space, /*batch=*/2);  // parameter shapes do not depend on the batch
  std::map<std::string, size_t> index;
  std::vector<const graph::Value*> rest;
  for (const graph::Value& v : g.values()) {
    if (v.kind != graph::ValueKind::param) continue;
    auto [cell, suffix] = split_cell_name(v.name);
    if (cell >= 0)
      add_to_layout(out.cell.entries_, index, cell, suffix, v.type.shape);
    else
      rest.push_back(&v);
  }
  std::map<std::string_view, std::pair<const SafetensorsTensor*, bool>> file_tensors;  // -> (tensor, needed)
  for (const SafetensorsTensor& t : f.tensors) file_tensors[t.name] = {&t, false};
  auto expect = [&](const std::string& name, const Shape& shape) -> const SafetensorsTensor& {
    auto it = file_tensors.find(name);
    if (it == file_tensors.end()) fail("{}: has no tensor {}, which its space ({}) needs", path, name, out.space.describe());
    const SafetensorsTensor& t = *it->second.first;
    if (t.dtype != DType::f32 || t.shape != shape)
      fail("{}: {} is {} {}, the space needs f32 {}", path, name, dtype_name(t.dtype), t.shape.str(), shape.str());
    check_finite(t, path);
    it->second.second = true;
    return t;
  };
  std::vector<const SafetensorsTensor*> meta_sources;  // one per meta cell entry
  std::vector<std::pair<const SafetensorsTensor*, std::string>> copies;
  for (const MetaCell::Entry& e : out.cell.entries_) meta_sources.push_back(&expect(kMetaCellPrefix + e.suffix, e.shape));
  for (const graph::Value* v : rest) copies.emplace_back(&expect(v->name, v->type.shape), v->name);
  for (const auto& [name, t] : file_tensors)
    if (!t.second) fail("{}: tensor {} is not part of the supernet of its space ({})", path, name, out.space.describe());
  for (const graph::Value& v : g.values())
    if (v.kind == graph::ValueKind::param && params.contains(v.name) && params.get(v.name).shape() != v.type.shape)
      fail("{}: {} has shape {} in the store, the file's space needs {}", path, v.name, params.get(v.name).shape().str(),
           v.type.shape.str());

  // Everything checked: now allocate and write into the caller's store.
  for (size_t i = 0; i < meta_sources.size(); ++i) {
    MetaCell::Entry& e = out.cell.entries_[i];
    e.data = Buffer(meta_sources[i]->data.bytes());
    std::memcpy(e.data.data(), meta_sources[i]->data.data(), e.data.bytes());
  }
  Rng rng(0);
  init_params(params, g, rng);  // creates what is missing; every value is overwritten below
  for (const auto& [t, name] : copies) std::memcpy(params.get(name).data(), t->data.data(), t->data.bytes());
  out.cell.unfold(params);
  return out;
}

}  // namespace onnas::nas
