// Inference over a batch in chunks, with every batch norm normalizing by the statistics
// of the whole batch: the numbers a training-mode batch norm over the whole batch gives
// (the query evaluation of few-shot adaptation, nas/fewshot.h), in the memory of one
// chunk.
//
// A batch norm's statistics depend on the outputs of the batch norms before it, so they
// are found level by level: level 1 are the batch norms with no batch norm on any path
// from the input, level l those whose input depends on levels < l only. One program is
// compiled from the graph, with a channel_moments node (ops/channel_moments.cc) on each
// batch norm's input as an extra output. For each level, the prefix of the program up to
// that level's moments runs over every chunk, the moments are combined per channel in
// double, and mean and (biased) variance become the level's running statistics, which the
// graph's evaluation-mode batch norms read. Then the whole program runs chunk by chunk
// for the output. Work: about levels / 2 + 1 forward passes; memory: one program's arena
// and tables for one chunk.
//
//   Graph g;  SearchNet net = emit_network(g, space, chunk, {.track_running = true, .training = false}, body);
//   ChunkedEval eval(g, net.x, net.logits);
//   eval.run(arena, params, query_x, logits);    // query_x [n, ...], n a multiple of chunk
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/compile.h"
#include "graph/ir.h"
#include "runtime/param_store.h"

namespace onnas::nas {

class ChunkedEval {
 public:
  // `g` holds the network on one chunk: `x` its input (batch = chunk), `out` the value
  // collected per chunk (batch first). Its batch norms must be in evaluation mode, their
  // running statistics parameters (set by run()). The graph is copied.
  ChunkedEval(graph::Graph g, graph::ValueId x, graph::ValueId out);

  int64_t chunk() const { return chunk_; }
  int levels() const { return int(levels_.size()); }
  size_t arena_bytes() const { return program_.arena_bytes(); }
  size_t table_bytes() const;

  // x_all: [n, ...] with n a multiple of chunk(); out_all: [n, ...] of out's row shape.
  // Writes every batch norm's running statistics in `params` (they end as the whole
  // batch's). Allocates nothing.
  void run(Arena& arena, ParamStore& params, const Tensor& x_all, const Tensor& out_all);

 private:
  struct Norm {
    graph::ValueId moments;
    std::string mean, var;  // the running statistics' parameter names
    int64_t channels = 0, per_channel = 0;  // per chunk: values per channel (chunk * spatial)
  };
  struct Level {
    std::vector<size_t> norms;  // into norms_
    size_t steps = 0;           // the prefix of the program that computes their moments
  };

  graph::ValueId x_, out_;
  int64_t chunk_ = 0;
  std::vector<Norm> norms_;
  std::vector<Level> levels_;
  graph::Program program_;
  std::vector<double> shift_, sum_, sum_sq_;  // per channel of the level being measured (its norms in turn)
};

}  // namespace onnas::nas
