#include "nas/meta_cell.h"

#include <algorithm>
#include <cstring>

#include "nas/network.h"
#include "runtime/error.h"

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
    const Shape& s = e->tensor.shape();
    auto [it, fresh] = index.emplace(suffix, mc.entries_.size());
    if (fresh) {
      mc.entries_.push_back({suffix, s, Buffer(), {}});
    } else {
      Shape& m = mc.entries_[it->second].shape;
      if (m.rank() != s.rank()) fail("meta cell: {} has rank {} in one cell and {} in another", suffix, s.rank(), m.rank());
      for (int d = 0; d < s.rank(); ++d) m[d] = std::max(m[d], s[d]);
    }
    mc.entries_[it->second].cells.push_back(cell);
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
  nlohmann::json space_json = nlohmann::json::parse(meta("search_space"), nullptr, /*allow_exceptions=*/false);
  if (space_json.is_discarded()) fail("{}: the search_space metadata is not JSON", path);
  MetaCellFile out{SearchSpace::from_json(space_json, path), f.metadata, MetaCell()};

  // Create the supernet's parameters for this space (values are overwritten below).
  ParamStore fresh;
  init_search_params(fresh, out.space, 0);
  out.cell = MetaCell::from_cells(out.space, fresh);
  for (MetaCell::Entry& e : out.cell.entries_) {
    const SafetensorsTensor& t = f.get(kMetaCellPrefix + e.suffix);
    if (t.dtype != DType::f32 || t.shape != e.shape)
      fail("{}: {}{} is {} {}, the space needs f32 {}", path, kMetaCellPrefix, e.suffix, dtype_name(t.dtype),
           t.shape.str(), e.shape.str());
    std::memcpy(e.data.data(), t.data.data(), e.data.bytes());
  }
  std::vector<const SafetensorsTensor*> rest;
  for (const auto& e : fresh.entries()) {
    if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
    if (is_cell_weight(*e)) continue;
    const SafetensorsTensor& t = f.get(e->name);
    if (t.dtype != DType::f32 || t.shape != e->tensor.shape())
      fail("{}: {} is {} {}, the space needs f32 {}", path, e->name, dtype_name(t.dtype), t.shape.str(),
           e->tensor.shape().str());
    rest.push_back(&t);
  }
  // Everything checked: now write into the caller's store.
  for (const auto& e : fresh.entries()) {
    if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
    if (!params.contains(e->name)) {
      params.add_weight(e->name, e->tensor.shape(), e->kind);
    } else if (params.get(e->name).shape() != e->tensor.shape()) {
      fail("{}: {} has shape {} in the store, the file's space needs {}", path, e->name,
           params.get(e->name).shape().str(), e->tensor.shape().str());
    }
  }
  for (const SafetensorsTensor* t : rest) std::memcpy(params.get(t->name).data(), t->data.data(), t->data.bytes());
  out.cell.unfold(params);
  return out;
}

}  // namespace onnas::nas
