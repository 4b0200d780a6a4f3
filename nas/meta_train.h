// Two-fold meta-learning (TFML) of ONNAS.md section 7, offline:
//
//   task fold  for each task of a meta-batch: copy the meta supernet, run T
//              first-order DARTS steps on the task's support set (weights and
//              alpha/beta both adapt; the architecture step uses the support set too —
//              a few-shot task has no other labelled data), take d_t = task - meta;
//              the meta parameters move by lr times the per-element weighted average
//              of the d_t (fold.h; softmax coefficients or the plain mean): SGD
//              without momentum on the gradient -average, lr 1.0 for weights and 0.6
//              for alpha/beta by default.
//   cell fold  the meta cell (meta_cell.h) folds the cells' differences and is
//              unfolded back into every cell, so after each meta step all cells use
//              the meta cell's weights.
//
// The first `warmup_steps` meta steps adapt and update the weights only.
// Temperature (MetaNAS's annealing, ONNAS.md section 9): the mixture weights are
// softmax(alpha / T), T annealed geometrically from `temperature.start` to
// `temperature.end` over `temperature.steps` meta steps after the warm-up. The store
// holds the effective logits a = alpha / T, so the graphs, plans and files are those
// of T = 1: when T changes, every a is multiplied by T_old / T_new, and the inner
// architecture step (Adam, invariant to the gradient's scale) runs at a_lr / T, which
// moves a exactly as Adam at a_lr moves alpha. The meta update (SGD on the task
// differences) is linear, so the same in either unit. Only Adam's weight decay on
// alpha/beta differs: it decays a, not alpha. A meta cell records its T; adaptation
// runs at a_lr / T too.
// Determinism: task i of the run (meta step s, slot b: i = s * meta_batch + b) is drawn
// and adapted from seeds that depend on the run's seed and i alone, so a run resumed
// from a checkpoint, or split across processes, does the same arithmetic.
//
//   MetaLearner ml(space, options, seed);
//   for (int64_t s = 0; s < steps; ++s) ml.step(s, draw_task);
//   ml.save("meta_cell.safetensors", {{"data", "fashion-mnist"}});
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/episode_sampler.h"
#include "graph/compile.h"
#include "nas/fold.h"
#include "nas/head.h"
#include "nas/meta_cell.h"
#include "nas/search.h"
#include "runtime/param_store.h"

namespace onnas::nas {

// One few-shot task: support [N*K, C, H, W] / [N*K] and query [N*Q, C, H, W] / [N*Q].
struct Task {
  Tensor support_x, support_y, query_x, query_y;
};
// Fills `out` with task number `index`; the same index must give the same task.
using TaskSource = std::function<void(uint64_t index, const Task& out)>;

// T at meta step s: `start` through the warm-up, then geometric to `end` over `steps`
// meta steps, then `end`. start = end = 1: no annealing.
struct TemperatureSchedule {
  float start = 1.0f, end = 1.0f;
  int64_t steps = 0;
  float at(int64_t step, int64_t warmup_steps) const;
  bool annealed() const { return start != 1.0f || end != 1.0f; }
};

struct MetaOptions {
  data::EpisodeShape episode;        // n_way, k_shot, q_query
  int64_t meta_batch = 10;           // tasks per meta step
  int inner_steps = 5;               // first-order DARTS steps per task
  // Images per inner step, drawn from the task's support set without replacement and
  // reshuffled after each pass over it (Reptile's minibatches); 0: the whole support
  // set every step. With a support set of several shots per class and minibatches,
  // successive inner steps see different images of a class, and Reptile's update then
  // rewards features that generalize across them; with one shot and the whole support
  // set every step, it sees five images that only differ and learns nothing that
  // transfers (README, "Meta-training on the glyph benchmark").
  int64_t inner_batch = 0;
  SearchOptions inner = default_inner();  // batch is set to inner_batch, or n_way * k_shot
  float lr_weights = 1.0f;           // meta SGD
  float lr_arch = 0.6f;
  FoldWeighting task_weighting = FoldWeighting::softmax;
  float task_multiplier = 1.0f;      // the constant on the task coefficients
  bool cell_fold = true;             // off: each cell keeps its own weights (plain Reptile)
  CellFoldOptions cell;
  int64_t warmup_steps = 0;          // meta steps that adapt and update weights only
  TemperatureSchedule temperature;   // of alpha/beta's softmax (see the top of this file)
  // The classifier at each task's start (head.h); with zero the meta classifier stays
  // zero.
  HeadInit head = HeadInit::zero;

  // The inner loop's defaults: the search step's Adam, at a constant learning rate.
  static SearchOptions default_inner();
};

struct TaskResult {
  float query_loss = 0;
  float query_accuracy = 0;
};

struct MetaStepResult {
  float query_loss = 0;      // mean over the meta-batch, after adaptation
  float query_accuracy = 0;
};

class MetaLearner {
 public:
  // The meta supernet is initialized from `seed` (cells unfolded from one meta cell).
  MetaLearner(SearchSpace space, MetaOptions options, uint64_t seed);

  // Meta step `step` (0-based): tasks step * meta_batch .. + meta_batch - 1.
  MetaStepResult step(int64_t step, const TaskSource& tasks);

  // The pieces of step(), for spreading a meta-batch over processes: run task `index`
  // and add its difference to `fold` (the task fold's accumulator, over
  // fold_size() elements); then apply the (merged) fold.
  TaskResult run_task(uint64_t index, const TaskSource& tasks, bool adapt_arch, FoldAverage& fold);
  // The task fold's accumulator, emptied: one per learner, allocated once (step() uses
  // it; a distributed step passes it to run_task and combines it across ranks).
  FoldAverage& fold();
  // Bytes of that accumulator and of the per-tensor differences.
  size_t fold_bytes() const;
  void apply_fold(const FoldAverage& fold, bool update_arch);
  size_t fold_size() const { return fold_size_; }
  bool in_warmup(int64_t step) const { return step < options_.warmup_steps; }
  // Moves the meta supernet's logits and the inner architecture step to the temperature
  // of meta step `step` (a no-op when it is the current one). step() calls it; a
  // distributed step calls it before its tasks.
  void anneal_to(int64_t step);
  // The temperature the stored logits are in (1 before any annealing).
  float temperature() const { return temperature_; }

  // Adapts a copy of the meta supernet to a task (inner steps) and measures the
  // query set; the meta parameters are untouched. For meta-validation.
  TaskResult evaluate_task(uint64_t index, const TaskSource& tasks);

  const SearchSpace& space() const { return space_; }
  const MetaOptions& options() const { return options_; }
  uint64_t seed() const { return seed_; }
  // The meta supernet: stem, cells (the unfolded meta cell), classifier, alpha/beta.
  const ParamStore& params() const { return meta_; }
  const MetaCell& meta_cell() const { return cell_; }
  // Bytes of the working supernet (parameters, gradients, optimizer state) and of
  // the one arena the inner steps and the query evaluation run in (the larger plan).
  size_t work_bytes() const { return work_.bytes(); }
  size_t arena_bytes() const;
  // Heap bytes of the inner search step's tables and the query program's.
  size_t table_bytes() const;

  // The meta cell file (meta_cell.h), with `metadata` and its temperature
  // ("alpha_temperature") added.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const;
  // Restores the meta supernet and meta cell from a file save() wrote for the same
  // space (and its temperature); returns its metadata.
  std::map<std::string, std::string> load(const std::string& path);

 private:
  TaskResult adapt(uint64_t index, const TaskSource& tasks, bool adapt_arch);

  SearchSpace space_;
  MetaOptions options_;
  uint64_t seed_;
  float temperature_ = 1.0f;
  ParamStore meta_;   // weights and alpha/beta of the meta supernet (no gradients)
  MetaCell cell_;
  ParamStore work_;   // the task's copy, with gradients and optimizer state
  std::unique_ptr<Searcher> searcher_;
  std::vector<std::string> names_;  // meta_'s weights and alpha/beta, fold order
  std::vector<size_t> offsets_;
  size_t fold_size_ = 0;
  FoldAverage fold_{0, FoldWeighting::mean};
  std::vector<float> diff_;
  // The task's images and the query evaluation program.
  Buffer sx_, sy_, qx_, qy_;
  Task task_;
  // One inner minibatch and the draw's rows (inner_batch > 0), allocated once.
  Buffer bx_, by_;
  Tensor batch_x_, batch_y_;
  std::vector<int64_t> order_, rows_;
  graph::Program query_;  // runs in the search step's arena
  SearchNet query_net_;
};

// The arena the query evaluation of `nq` images needs (compiled and let go): what a
// memory budget must leave for it beside the inner search step.
size_t query_eval_arena_bytes(const SearchSpace& space, int64_t nq);

// `steps` first-order DARTS steps on the task's support set (both the weight and the
// architecture step use it: a few-shot task has no other labelled data), the learning
// rate schedule over `steps`; a non-finite loss throws, naming `what` and the step.
// When the step splits the support set into micro-batches, the support set is first
// laid out shot-major (interleave_classes), so that each micro-batch holds images of
// every class rather than of one: batch norm normalizes a micro-batch by its own
// statistics, and a micro-batch of one class has its class normalized away.
void search_on_support(Searcher& searcher, const Task& task, int steps, const std::string& what);

// Fills `rows` (steps x batch of them) with the support rows the inner steps take:
// the rows 0..pool-1 (pool = order.size(), `order` its scratch) in an order shuffled by
// `seed`, in consecutive chunks of `batch`, reshuffled after each pass (a chunk that
// crosses a pass takes its tail from the next order, so within a pass every row comes
// once). Nothing is allocated.
void minibatch_rows(std::span<int64_t> order, std::span<int64_t> rows, int64_t batch, uint64_t seed);

// `steps` first-order DARTS steps, each on batch_x.shape()[0] images of the task's
// support set, those minibatch_rows(order, rows, .., seed) draws, copied into batch_x /
// batch_y (order: one per support row; rows: steps x batch). A non-finite loss throws
// as above.
void search_on_minibatches(Searcher& searcher, const Task& task, int steps, const Tensor& batch_x,
                           const Tensor& batch_y, std::span<int64_t> order, std::span<int64_t> rows, uint64_t seed,
                           const std::string& what);

// Reorders the rows of x (images) and y (labels, 0..N-1, K of each) in place so that
// image k of every class is at rows k*N .. k*N+N-1 (shot-major), each class's images
// in their order: from the episode layout (class-major, class j at rows j*K ..) or any
// other. Rows already shot-major stay (a second call changes nothing). N = n_way.
void interleave_classes(const Tensor& x, const Tensor& y, int64_t n_way);

// The temperature a meta cell file's logits are in (its "alpha_temperature"; 1 when
// absent); a value that is not a number in [1e-6, 1e6] throws, naming `source`.
float meta_cell_temperature(const std::map<std::string, std::string>& metadata, const std::string& source);

// The seed of everything random about task number `index` of a run seeded `seed`
// (its episode draw, its inner search's sampler): a function of the two alone.
uint64_t task_seed(uint64_t seed, uint64_t index);

}  // namespace onnas::nas
