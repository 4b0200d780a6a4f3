// Graph emitters for the networks of the search: the supernet of ONNAS.md section 2
// (mixed ops over every edge, nodes over edge pairs) and the discrete network of a
// genotype, plus the parameter initialization both share. Names follow
// docs/PARAMS.md exactly, so checkpoints move between the two and to PyTorch.
//
//   SearchSpace space;                       // defaults: 7 ops, C = 16, 4 cells
//   ParamStore params;
//   Graph g;
//   SearchNet net = emit_search_net(g, space, batch, full_sample(space));
//   init_params(params, g, rng);             // creates every param the graph uses
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "nas/genotype.h"
#include "nas/search_space.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"

namespace onnas::nas {

using graph::Graph;
using graph::ValueId;

// Which parts of a search step receive gradients (ONNAS.md sections 4 and 5).
// Full mode: every op of every edge, every pair of every node.
struct CellSample {
  std::vector<std::vector<uint8_t>> grad_ops;  // [edge][op]: 1 = gradient op, 0 = constant
  std::vector<int> grad_pair;                  // [node]: the gradient pair, or -1 = all pairs
};
struct Sample {
  CellSample normal, reduce;
  const CellSample& of(bool reduction) const { return reduction ? reduce : normal; }
};
Sample full_sample(const SearchSpace& space);

// How batch norm behaves: search nets use no affine parameters and batch statistics;
// discrete nets are affine and track running statistics (training or inference).
struct BnMode {
  bool affine = false;
  bool track_running = false;
  bool training = true;
};

struct SearchNet {
  ValueId x = graph::kNoValue, labels = graph::kNoValue;
  ValueId logits = graph::kNoValue, loss = graph::kNoValue;
  std::vector<ValueId> states;  // stem output, then each cell's output
};

// The whole supernet: stem, cells, head and loss, on a batch of `batch` images.
SearchNet emit_search_net(Graph& g, const SearchSpace& space, int64_t batch, const Sample& sample);

// Pieces, for step-by-step back-propagation (nas/search_step.cc).
ValueId emit_stem(Graph& g, const SearchSpace& space, ValueId x, BnMode bn);
ValueId emit_search_cell(Graph& g, const SearchSpace& space, int cell, ValueId s0, ValueId s1,
                         const CellSample& sample);
struct Head {
  ValueId logits, loss;
};
Head emit_head(Graph& g, const SearchSpace& space, ValueId s_last, ValueId labels);

// The discrete network of a genotype (affine BN; `training` selects batch or running
// statistics). The genotype must fit the space (same nodes); it is validated here.
SearchNet emit_discrete_net(Graph& g, const SearchSpace& space, const Genotype& genotype, int64_t batch,
                            bool training);

// The parameters of `kind` (weight, arch, ...) that graph `g` uses, in graph order:
// the `wrt` list of a backward pass.
std::vector<ValueId> params_of_kind(const Graph& g, const ParamStore& params, ParamKind kind);

// Creates (in graph order) every parameter that graph `g` uses and `params` lacks,
// initialized as PyTorch does: conv and linear weights kaiming-uniform(a = sqrt 5)
// (U(+-1/sqrt(fan_in))), linear bias U(+-1/sqrt(fan_in)), BN weight 1 / bias 0,
// running mean 0 / var 1, alpha and beta 1e-3 * N(0, 1). Kinds: alpha/beta arch,
// running statistics buffer, the rest weight.
void init_params(ParamStore& params, const Graph& g, Rng& rng);
// The supernet's parameters (every op of every edge, alpha and beta), created where
// missing with init_params from a generator seeded by `seed`.
void init_search_params(ParamStore& params, const SearchSpace& space, uint64_t seed);

}  // namespace onnas::nas
