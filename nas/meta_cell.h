// The meta cell of ONNAS.md section 7: one stored set of cell weights for all n cells
// of a supernet (the cell fold), and the meta cell file the device loads.
//
// Cells differ in width (channels double at each reduction) and a little in what they
// hold (a reduction cell's stride-2 skip is a factorized reduce, a cell after a
// reduction preprocesses s0 with one). The meta cell holds every cell-relative weight
// name any cell uses ("pre1.conv.weight", "nodes.0.edges.1.conv_3x3.pw.weight", ...)
// at the largest size per dimension; cell i uses the leading slice of each tensor.
//
//   MetaCell mc = MetaCell::from_cells(space, params);  // layout; values from the cells
//   mc.fold(params, {.weighting = FoldWeighting::softmax});  // cells -> meta cell
//   mc.unfold(params);                                      // meta cell -> every cell
//   save_meta_cell("meta.safetensors", space, params, mc, {{"data", "fashion-mnist"}});
//   MetaCellFile f = load_meta_cell("meta.safetensors", params);  // creates the supernet
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nas/fold.h"
#include "nas/search_space.h"
#include "runtime/param_store.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::nas {

// Prefix of the meta cell's tensors in a meta cell file: "meta_cell.<suffix>".
inline constexpr const char* kMetaCellPrefix = "meta_cell.";
inline constexpr const char* kMetaCellFormat = "onnas meta cell";
inline constexpr int kMetaCellVersion = 1;

struct CellFoldOptions {
  FoldWeighting weighting = FoldWeighting::softmax;
  float multiplier = 1.0f;  // the constant on the coefficients
  float lr = 1.0f;          // the meta cell's step along the weighted average
};

struct MetaCellFile;

class MetaCell {
 public:
  struct Entry {
    std::string suffix;      // cell-relative name
    Shape shape;             // the largest over the cells using it
    Buffer data;             // f32, shape.numel()
    std::vector<int> cells;  // the cells that hold a tensor of this name
  };

  // The layout of the cells' weights in `params` (names "cells.{i}.<suffix>"), values
  // copied from the cells in order: each element holds the value of the last cell
  // whose slice covers it.
  static MetaCell from_cells(const SearchSpace& space, const ParamStore& params);

  // Writes each cell's leading slice of the meta cell into its weights.
  void unfold(ParamStore& params) const;
  // The cell fold: e_i = cell_i - (slice of the meta cell); per element, the
  // weighted average of e_i over the cells covering it (fold.h) times `multiplier`,
  // and the meta cell moves by lr times that. Does not unfold.
  void fold(const ParamStore& params, const CellFoldOptions& options);

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& suffix) const;
  size_t bytes() const;  // storage of the meta cell
  // Storage of the n cells' weights in `params` (what the meta cell replaces).
  static size_t cells_bytes(const SearchSpace& space, const ParamStore& params);

 private:
  friend MetaCellFile load_meta_cell(const std::string& path, ParamStore& params);
  std::vector<Entry> entries_;
};

// Copies every element of `cell` (shape `small`) from / to its leading slice of `meta`
// (shape `big`, each dimension at least as large). Same rank required.
void copy_leading_slice(const float* meta, const Shape& big, float* cell, const Shape& small);
void write_leading_slice(float* meta, const Shape& big, const float* cell, const Shape& small);

// The meta cell file: stem, classifier and alpha/beta from `params`, the meta cell as
// "meta_cell.<suffix>", and metadata: format, version, the search space (JSON), each
// cell's width, the meta cell's and the n cells' bytes, plus `metadata`. Atomic.
void save_meta_cell(const std::string& path, const SearchSpace& space, const ParamStore& params,
                    const MetaCell& cell, const std::map<std::string, std::string>& metadata = {});

struct MetaCellFile {
  SearchSpace space;
  std::map<std::string, std::string> metadata;
  MetaCell cell;
};
// Reads a meta cell file: creates the supernet's weights and alpha/beta in `params`
// (where missing), fills stem, classifier and alpha/beta, and unfolds the meta cell
// into every cell. Throws onnas::Error naming the file and what does not fit.
MetaCellFile load_meta_cell(const std::string& path, ParamStore& params);

}  // namespace onnas::nas
