// One backward pass of a search step in a memory mode of On-NAS (ONNAS.md sections
// 4-6), compiled once for a configuration: the schedule of programs that computes the
// gradients of one kind of parameter (the network weights, or alpha/beta), with the
// sample of each step as run-time data.
//
//   full            every op and pair gets gradients (DARTS)
//   ops             k_grad gradient ops per edge, the rest forward-only constants
//   ops+pairs       also one gradient pair per node
//   ops+pairs+sbs   also step-by-step back-propagation: one phase per cell, last
//                   cell first, then the stem; each phase hands the gradients of
//                   both of its cell's inputs to the phases before it, so the sum over
//                   the phases is the one-shot gradient exactly
//
// The sample as data: StepGates makes a gate per op of every edge (at most k_grad open
// per edge) and, with pairs, a gate per edge (the two of the node's gradient pair open),
// the op gates nested under the edge gates. The supernet is emitted once with every
// candidate present and its mixes gated (nas/network.h); autodiff gates the backward;
// the planner reserves, per group of gates, room for its capacity's largest members
// (memory_planner/choices.h). A step sets the flags (StepGates::apply) and runs: the
// plan printed before the first step bounds every step.
//
// SBS variants: `recompute` re-runs the forward from the input up to cell i in phase i
// (no cell output kept across phases); `checkpoint` runs the forward once, keeps every
// cell output, and each phase computes only its own cell. The phases and the values
// handed between them (cell inputs, the gradients of cell outputs) are one schedule
// planned in one arena (graph/schedule.h). Micro-batches (`split` S): the batch is cut
// into S chunks run one after the other, their gradients accumulated (the loss of each
// chunk is scaled by 1/S, so the sum is the batch's mean-loss gradient; batch norm uses
// the chunk's statistics).
//
//   StepGates gates(space, config);
//   GradientPass pass(space, config, batch, gates, ParamKind::weight, params);
//   GateValues values(*gates.space());            // after every pass is compiled
//   gates.apply(sample, values);
//   Arena arena(pass.arena_bytes());
//   PassResult r = pass.run(arena, params, x, y, &values);   // params.grad() += d loss
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "graph/compile.h"
#include "graph/gates.h"
#include "graph/schedule.h"
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
  // Test only: SBS phases do not hand the gradient of their cell's s0 on (as the
  // paper's code), so the step is no longer exact; tests assert that this is seen.
  bool test_drop_s0_hand_on = false;

  bool samples_ops() const { return mode != Mode::full; }
  bool samples_pairs() const { return mode == Mode::ops_pairs || mode == Mode::ops_pairs_sbs; }
  bool sbs_on() const { return mode == Mode::ops_pairs_sbs; }
  // Micro-batches of one image of a batch of `batch`: batch norm normalizes each image
  // by itself, and after the global pooling every image looks alike (a search so is at
  // chance). The tool warns, and a memory budget chooses them only when nothing else fits.
  bool one_image_micro_batches(int64_t batch) const { return split > 1 && batch / split == 1; }
  // "ops+pairs+sbs/recompute, k_grad 2, split 5"
  std::string describe() const;
  // The tool's flags for it: "--mode ops+pairs+sbs --sbs recompute --k-grad 2 --split 5"
  std::string flags() const;
  // Throws onnas::Error if the batch cannot be split, or k_grad/split are out of range.
  void validate(const SearchSpace& space, int64_t batch) const;
};

// The run-time gates of a configuration (none in full mode).
class StepGates {
 public:
  StepGates(const SearchSpace& space, const StepConfig& config);
  // nullptr in full mode (nothing is sampled).
  const std::shared_ptr<graph::GateSpace>& space() const { return space_; }
  const MixGates& mix() const { return mix_; }
  // Sets the flags of `sample` in `values` (made from space() after every program of
  // the step was compiled) and evaluates them. Allocates nothing. Throws onnas::Error
  // if the sample opens more ops of an edge than k_grad or more than one pair of a node.
  void apply(const Sample& sample, graph::GateValues& values) const;
  // Which entries of alpha [E * k] and of each node's beta got a gradient in the run of
  // `values` (1) or not (0), for the optimizers and the sampler's history.
  void alpha_trained(const graph::GateValues& values, bool reduction, std::span<uint8_t> out) const;
  void beta_trained(const graph::GateValues& values, bool reduction, int node, std::span<uint8_t> out) const;

 private:
  SearchSpace space_config_;
  StepConfig config_;
  std::shared_ptr<graph::GateSpace> space_;
  MixGates mix_;
  std::vector<graph::GateId> edge_gates_[2];  // [edge], pairs modes
  std::vector<std::vector<std::pair<int, int>>> pairs_;  // [node]: its pairs (so apply() allocates nothing)
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
  // Compiles the schedule of the pass for a batch of `batch` images (split into
  // config.split chunks). `kind`: ParamKind::weight or ParamKind::arch.
  GradientPass(const SearchSpace& space, const StepConfig& config, int64_t batch, const StepGates& gates,
               ParamKind kind, const ParamStore& params);
  GradientPass(GradientPass&&) noexcept;
  GradientPass& operator=(GradientPass&&) noexcept;
  ~GradientPass();

  // x [batch, C, H, W] f32, y [batch] i32. Accumulates into params.grad(). `arena`
  // must hold at least arena_bytes(); `gates` the step's sample (nullptr in full
  // mode). Allocates nothing (unless profiled: `profile` collects the time of every
  // op of every program run).
  PassResult run(Arena& arena, ParamStore& params, const Tensor& x, const Tensor& y, const graph::GateValues* gates,
                 graph::Profile* profile = nullptr);

  // The schedule's plan: every activation, kept value, handed-on value and workspace
  // of every program, for every admissible sample.
  size_t arena_bytes() const;
  // Of which the values handed between SBS phases (cell inputs, gradients of cell
  // outputs), each counted once (0 without SBS).
  size_t handed_bytes() const;
  const graph::Schedule& schedule() const;
  // Frees the schedule's buffer list (graph::Schedule::release_planning_data): for
  // holders that only run the pass.
  void release_planning_data();
  // Every program, in run order of one chunk, with a label ("cell 3 phase", ...).
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
