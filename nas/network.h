// Graph emitters for the networks of the search: one skeleton (stem, cells of
// preprocessed inputs and m nodes, head) that serves both the supernet of ONNAS.md
// section 2 (every edge a mixed op over the candidates, every node a mix over pairs of
// edges) and the discrete network of a genotype (two edges of one op per node), plus
// the parameter initialization both share. Names follow docs/PARAMS.md exactly, so
// checkpoints move between the two and to PyTorch.
//
//   SearchSpace space;                       // defaults: 7 ops, C = 16, 4 cells
//   ParamStore params;
//   Graph g;
//   SearchNet net = emit_search_net(g, space, batch);   // the full DARTS step's supernet
//   init_params(params, g, rng);             // creates every param the graph uses
//
// The sampled search (sections 4-5) emits the same supernet with run-time gates
// (graph/gates.h) on its mixes: MixGates says, for every op of every edge and every
// pair of every node, the gate under which it gets gradients; a step's sample only
// sets the gates' flags (nas/search_step.h builds them).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "graph/gates.h"
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

// The gate of every term of a cell type's mixes; kAlways: the term always gets
// gradients. The gate of an op must imply the gate of its edge's pairs (nested gates).
struct CellGates {
  std::vector<graph::GateId> ops;                 // [edge * k + op]
  std::vector<std::vector<graph::GateId>> pairs;  // [node][pair]
  bool gated() const;
};
struct MixGates {
  CellGates normal, reduce;
  const CellGates& of(bool reduction) const { return reduction ? reduce : normal; }
};
// Every term always gets gradients: the full DARTS step.
MixGates ungated(const SearchSpace& space);

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

// The skeleton. A cell preprocesses its inputs s0, s1 into states 0 and 1 (ReLU, 1x1
// conv, BN; a factorized reduce for s0 after a reduction cell), computes its m nodes
// from them with `body` (node j reads states 0..j+1; state j + 2 is node j), and
// concatenates the nodes. `relu_s0` / `relu_s1`: the ReLU of s0 / s1 where the caller
// has it already (emit_network shares one per cell output), else the cell emits it.
using CellBody = std::function<std::vector<ValueId>(Graph& g, int cell, ValueId state0, ValueId state1)>;
ValueId emit_stem(Graph& g, const SearchSpace& space, ValueId x, BnMode bn);
ValueId emit_cell(Graph& g, const SearchSpace& space, int cell, ValueId s0, ValueId s1, BnMode bn,
                  const CellBody& body, ValueId relu_s0 = graph::kNoValue, ValueId relu_s1 = graph::kNoValue);
struct Head {
  ValueId logits, loss;
};
Head emit_head(Graph& g, const SearchSpace& space, ValueId s_last, ValueId labels);
// Stem, cells, head and loss on a batch of `batch` images.
SearchNet emit_network(Graph& g, const SearchSpace& space, int64_t batch, BnMode bn, const CellBody& body);

// The supernet's cell body (every edge a mixed op, every node a mix over pairs), with its
// gates; its batch norms as `bn` says (the search's: batch statistics, not affine; the
// chunked query evaluation's: running statistics, nas/chunked_eval.h).
CellBody search_body(const SearchSpace& space, const MixGates& gates, BnMode bn = {});
// A genotype's cell body (affine BN in `bn`).
CellBody discrete_body(const SearchSpace& space, const Genotype& genotype, BnMode bn);
// The supernet on a batch; `gates` from nas/search_step.h for the sampled modes.
SearchNet emit_search_net(Graph& g, const SearchSpace& space, int64_t batch, const MixGates& gates);
SearchNet emit_search_net(Graph& g, const SearchSpace& space, int64_t batch);
// One search cell (for step-by-step back-propagation, nas/search_step.cc).
ValueId emit_search_cell(Graph& g, const SearchSpace& space, int cell, ValueId s0, ValueId s1, const MixGates& gates);

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
// A graph's parameters in its order, in two blocks (the names end to end, the types),
// so that the graph can be freed before the store's entries are made: entries made
// while the graph lives end up scattered among its freed blocks, and keep those pages
// resident (nas::Searcher).
struct ParamList {
  struct Item {
    uint32_t name_at, name_len;
    graph::TensorType type;
  };
  std::string names;
  std::vector<Item> items;
  std::string_view name(size_t i) const { return std::string_view(names).substr(items[i].name_at, items[i].name_len); }
};
ParamList param_list(const Graph& g);
void init_params(ParamStore& params, const ParamList& list, Rng& rng);
// The supernet's parameters (every op of every edge, alpha and beta), created where
// missing with init_params from a generator seeded by `seed`.
void init_search_params(ParamStore& params, const SearchSpace& space, uint64_t seed);

}  // namespace onnas::nas
