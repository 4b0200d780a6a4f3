// The first-order DARTS step of ONNAS.md section 3, the unit of search:
//   (a) architecture step — loss on a validation batch, gradient w.r.t. alpha and
//       beta only, Adam;
//   (b) weight step — loss on a training batch, gradient w.r.t. the weights only,
//       Adam with betas (0, 0.999) (the research code's choice) or SGD with momentum.
// Both are backward passes through the same supernet, in the memory mode of
// `options.step` (nas/search_step.h): with sampling, one sample per step (drawn by the
// ArchSampler of nas/sampler.h) serves both passes, as run-time data of programs
// compiled once.
//
// The jobs are split: CompiledStep is the plan (gates, the two passes, the gradient
// block's layout; no memory), ArchSampler the sampling, GradientBlock the gradient
// storage, search_checkpoint.h the checkpoints; Searcher owns one of each, the arena,
// and the optimizers, and runs the steps. Everything is allocated when it is built:
// a step allocates nothing, and the memory it uses never grows.
//
//   Searcher s(space, options, params, seed);
//   s.set_progress(0, total);                           // cosine lr, expected alpha
//   auto r = s.step(train_x, train_y, val_x, val_y);   // tensors [B, C, H, W] / [B]; next step
//   Genotype g = derive_genotype(space, params);
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "graph/compile.h"
#include "graph/gates.h"
#include "graph/optimizer.h"
#include "nas/grad_block.h"
#include "nas/network.h"
#include "nas/sampler.h"
#include "nas/search_checkpoint.h"
#include "nas/search_space.h"
#include "nas/search_step.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"

namespace onnas::nas {

// adam_bf16: Adam whose second moment is kept in bf16, rounded stochastically (half
// its state); adam_factored: Adam whose second moment is factored into row and column
// averages as Adafactor's (a few percent of its state; graph/optimizer.h).
enum class WeightOptimizer { adam, sgd, adam_bf16, adam_factored };
// The tools' names of them (--optimizer), and the one each names; parse throws on
// anything else.
inline constexpr std::string_view kWeightOptimizerNames[] = {"adam", "adam-bf16", "adam-factored", "sgd"};
WeightOptimizer parse_weight_optimizer(std::string_view name);

struct SearchOptions {
  int64_t batch = 32;
  WeightOptimizer w_optimizer = WeightOptimizer::adam;
  float w_lr = 3e-3f;          // Adam betas (0, 0.999); with sgd, 0.025 is DARTS's choice
  float w_lr_min = 1e-4f;      // cosine schedule's floor
  float w_momentum = 0.9f;     // sgd only
  float w_weight_decay = 3e-4f;
  float w_grad_clip = 5.0f;
  float a_lr = 3e-4f;          // Adam betas (0.5, 0.999), as DARTS
  // The architecture step's rate follows a cosine from a_lr to 0 over the run (set_progress)
  // instead of staying at a_lr (DARTS): the late steps, which an annealed temperature
  // makes the largest in logits (a_lr / T), shrink, so the argmax settles.
  bool a_lr_cosine = false;
  float a_weight_decay = 1e-3f;
  StepConfig step;             // memory mode, SBS variant, k_grad, micro-batches
  double explore_prob = 0.2;   // sampled modes: per-edge exploration
  // Weight gradients are stored only for the weights a step's sample trains (one
  // block, sized for the worst sample); the others have no storage. Off: every weight
  // keeps its gradient in the store (same results, more memory).
  bool sparse_weight_grads = true;
};

struct StepResult {
  float arch_loss = 0;
  float weight_loss = 0;
  float weight_accuracy = 0;  // on the training batch, before the update
};

// The compiled step of a configuration: its gates, the weight and architecture passes,
// the layout of the gradient block. Holds no arena and no parameters (it reads the
// store's names and kinds). What `onnas plan` and the memory budget look at.
class CompiledStep {
 public:
  // `weight_names`: the order of the gradient block's trained() flags (empty: the
  // store's weights in its order).
  CompiledStep(const SearchSpace& space, const SearchOptions& options, const ParamStore& params,
               bool allocate_grad_block = false, std::span<const std::string> weight_names = {});
  const StepGates& gates() const { return gates_; }
  GradientPass& weight() { return weight_; }
  GradientPass& arch() { return arch_; }
  const GradientPass& weight() const { return weight_; }
  const GradientPass& arch() const { return arch_; }
  // The arena both passes run in (one after the other): the larger plan.
  size_t arena_bytes() const { return std::max(weight_.arena_bytes(), arch_.arena_bytes()); }
  size_t handed_bytes() const { return std::max(weight_.handed_bytes(), arch_.handed_bytes()); }
  // The weight-gradient block (0 without sparse gradients: the store holds them).
  size_t grad_bytes() const { return sparse_ ? block_.bytes() : 0; }
  GradientBlock& block() { return block_; }
  // Heap bytes of the compiled tables (both passes): what running needs.
  size_t table_bytes() const;
  // Heap bytes only planning and reports need (the passes' buffer lists); a Searcher
  // frees them once its step is compiled.
  size_t planning_bytes() const;
  void release_planning_data();

 private:
  StepGates gates_;
  GradientPass weight_, arch_;
  bool sparse_;
  GradientBlock block_;
};

// Bytes of the optimizer state a search keeps for `params` (by the options' optimizers).
size_t optimizer_state_bytes(const ParamStore& params, const SearchOptions& options);

class Searcher {
 public:
  // Creates the supernet's parameters in `params` where missing (seeded by `seed`),
  // compiles the step and allocates its arena and gradient block.
  Searcher(SearchSpace space, SearchOptions options, ParamStore& params, uint64_t seed);

  // Step next_step() of the total: draws its sample, runs both steps, and advances.
  StepResult step(const Tensor& train_x, const Tensor& train_y, const Tensor& val_x, const Tensor& val_y);
  // The next step's index and the total number of steps: the weight step's cosine
  // learning rate and the horizon of the expected-alpha ranking.
  void set_progress(int64_t step, int64_t total);
  int64_t next_step() const { return step_; }
  int64_t total_steps() const { return total_; }

  const SearchSpace& space() const { return space_; }
  const SearchOptions& options() const { return options_; }
  const CompiledStep& compiled() const { return *compiled_; }
  // The arena both passes run in, allocated once.
  size_t arena_bytes() const { return arena_.bytes(); }
  // Nothing in the arena outlives a step, so between steps others may run their programs
  // in it (few-shot adaptation's query evaluation and fine-tuning: one arena for the
  // whole task). reserve_arena makes it at least `bytes` (contents are lost).
  Arena& arena() { return arena_; }
  void reserve_arena(size_t bytes);
  // Of the arena, the values handed between SBS phases (0 without SBS).
  size_t handed_bytes() const { return compiled_->handed_bytes(); }
  // The block holding the weight gradients of a step (0 when the store holds them).
  size_t grad_bytes() const { return compiled_->grad_bytes(); }
  // The sample of the last step (the full sample in full mode).
  const Sample& last_sample() const { return sample_; }
  // Called after each backward pass, before its optimizer step (arch = true for the
  // architecture step): the gradients are in params.grad(). For --dump-grads.
  void set_gradient_hook(std::function<void(const ParamStore&, bool arch)> hook) { hook_ = std::move(hook); }
  // Every later step adds the time of each op it runs to `profile` (nullptr: off).
  void set_profile(graph::Profile* profile) { profile_ = profile; }
  // Starts over on a new task (the inner loop of meta-learning): optimizer state is
  // zeroed, the sampler's alpha history dropped and its draws reseeded by `seed`, the
  // step counter reset. Compiled passes and memory are kept. Parameter values are the caller's.
  void reset(uint64_t seed);
  // Checkpoints (atomic): every weight, alpha/beta and optimizer state of the store,
  // the sampler's alpha history, and `metadata`. load_checkpoint shows the metadata to
  // `check_metadata` first, then checks every tensor before it copies any, restores
  // them and returns the metadata.
  void save_checkpoint(const std::string& path, const std::map<std::string, std::string>& metadata) const;
  std::map<std::string, std::string> load_checkpoint(const std::string& path,
                                                     const CheckpointMetadataCheck& check_metadata = {});
  // With frozen = true, step() runs only the weight step (TFML's warm-up).
  void set_arch_frozen(bool frozen) { arch_frozen_ = frozen; }
  // The architecture step's learning rate from now on (meta-learning's temperature).
  void set_arch_lr(float lr) { a_opt_.set_lr(lr); }
  // Softmax temperature T of alpha/beta (MetaNAS's annealing, as in meta_train.h): the
  // store keeps the effective logits alpha / T, so graphs, plans and files are those of
  // T = 1. set_temperature(t) multiplies every alpha/beta entry by T / t and steps them
  // at options().a_lr / t from then on, which moves alpha / t as Adam at a_lr moves
  // alpha. Checkpoints record T ("alpha_temperature") and load_checkpoint restores it.
  void set_temperature(float t);
  float temperature() const { return temperature_; }
  const std::vector<std::string>& weight_names() const { return weight_names_; }
  const std::vector<std::string>& arch_names() const { return arch_names_; }
  const ArchSampler& sampler() const { return sampler_; }

 private:
  SamplerOptions sampler_options() const;

  SearchSpace space_;
  SearchOptions options_;
  ParamStore& params_;
  Rng rng_;
  ArchSampler sampler_;
  int64_t step_ = 0, total_ = 1;
  std::unique_ptr<CompiledStep> compiled_;
  graph::GateValues gate_values_;
  Arena arena_;
  Sample sample_;
  std::unique_ptr<graph::Optimizer> w_opt_;
  graph::Adam a_opt_;
  std::vector<std::string> weight_names_, arch_names_;
  // Which arch entries got a gradient this step: alpha [2][E * k], beta [2][node][pairs].
  std::vector<uint8_t> alpha_trained_[2];
  std::vector<std::vector<uint8_t>> beta_trained_[2];
  std::function<void(const ParamStore&, bool)> hook_;
  graph::Profile* profile_ = nullptr;
  bool arch_frozen_ = false;
  float temperature_ = 1.0f;
};

// Fraction of rows whose argmax of logits [N, K] equals the label (rows with label < 0 skipped).
float accuracy(const Tensor& logits, const Tensor& labels);

}  // namespace onnas::nas
