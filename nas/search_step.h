// One backward pass of a search step in a memory mode of On-NAS (ONNAS.md sections
// 4-6): the compiled programs that compute the gradients of one kind of parameter
// (the network weights, or alpha/beta) for one sample, and the order to run them in.
//
//   full            every op and pair gets gradients (DARTS)
//   ops             k_grad gradient ops per edge, the rest forward-only constants
//   ops+pairs       also one gradient pair per node
//   ops+pairs+sbs   also step-by-step back-propagation: one phase per cell, last
//                   cell first, then the stem; each phase hands the gradients of
//                   both of its cell's inputs to the producers, so the sum over the
//                   phases is the one-shot gradient exactly
//
// SBS variants: `recompute` re-runs the forward from the input up to cell i in
// phase i (no cell output kept across phases); `checkpoint` runs the forward once,
// keeps every cell output, and each phase computes only its own cell. Micro-batches
// (`split` S): the batch is cut into S chunks run one after the other, their
// gradients accumulated (the loss of each chunk is scaled by 1/S, so the sum is the
// batch's mean-loss gradient; batch norm uses the chunk's statistics).
//
//   GradientPass pass(space, {.mode = Mode::ops_pairs_sbs, .split = 5}, batch, sample,
//                     ParamKind::weight, params);
//   Arena arena(pass.arena_bytes());
//   PassResult r = pass.run(arena, params, x, y);   // params.grad() += d loss
//
// Memory of a pass: the arena (the largest program's plan; programs run one after
// the other in it) plus, with SBS, the side storage: the kept cell outputs and the
// gradients of the cell outputs being handed on (side_bytes()). Parameters, their
// gradients and optimizer state are the ParamStore's (persistent).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graph/compile.h"
#include "nas/network.h"
#include "nas/search_space.h"
#include "runtime/param_store.h"
#include "runtime/tensor.h"

namespace onnas::nas {

enum class Mode { full, ops, ops_pairs, ops_pairs_sbs };
enum class SbsVariant { recompute, checkpoint };

const char* mode_name(Mode m);                   // "full", "ops", "ops+pairs", "ops+pairs+sbs"
Mode mode_from_name(const std::string& name);    // throws onnas::Error naming the known modes
const char* sbs_variant_name(SbsVariant v);
SbsVariant sbs_variant_from_name(const std::string& name);

struct StepConfig {
  Mode mode = Mode::full;
  SbsVariant sbs = SbsVariant::recompute;
  int k_grad = 2;  // gradient ops per edge (modes with ops)
  int split = 1;   // micro-batches per batch

  bool samples_ops() const { return mode != Mode::full; }
  bool samples_pairs() const { return mode == Mode::ops_pairs || mode == Mode::ops_pairs_sbs; }
  bool sbs_on() const { return mode == Mode::ops_pairs_sbs; }
  // "ops+pairs+sbs/recompute, k_grad 2, split 5"
  std::string describe() const;
  // Throws onnas::Error if the batch cannot be split, or k_grad/split are out of range.
  void validate(const SearchSpace& space, int64_t batch) const;
};

struct PassResult {
  float loss = 0;        // mean over the batch
  int64_t correct = 0;   // argmax(logits) == label, over the batch
};

// Forward cell evaluations per chunk: n for the one-shot modes, 2n - 1 for SBS
// checkpoint, n(n - 1)/2 + n for SBS recompute.
int64_t cell_forwards(const SearchSpace& space, const StepConfig& config);

class GradientPass {
 public:
  // Compiles every program of the pass for a batch of `batch` images (split into
  // config.split chunks). `kind`: ParamKind::weight or ParamKind::arch.
  GradientPass(const SearchSpace& space, const StepConfig& config, int64_t batch, const Sample& sample,
               ParamKind kind, const ParamStore& params);
  GradientPass(GradientPass&&) noexcept;
  GradientPass& operator=(GradientPass&&) noexcept;
  ~GradientPass();

  // x [batch, C, H, W] f32, y [batch] i32. Accumulates into params.grad().
  // `arena` must hold at least arena_bytes(); allocates nothing (unless profiled:
  // `profile` collects the time of every op of every program run).
  PassResult run(Arena& arena, ParamStore& params, const Tensor& x, const Tensor& y,
                 graph::Profile* profile = nullptr);

  size_t arena_bytes() const;  // the largest program's plan
  size_t side_bytes() const;   // SBS: kept cell outputs and handed-on gradients
  // Every program, in run order of one chunk, with a label ("phase cell 3", ...).
  struct Labeled {
    std::string label;
    const graph::Program* program;
  };
  std::vector<Labeled> programs() const;
  // Forward cell evaluations per chunk (n for one-shot, more when SBS recomputes);
  // the measure of recomputed work the memory budget ranks modes by.
  int64_t cell_forwards() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace onnas::nas
