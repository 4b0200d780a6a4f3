// The first-order DARTS step of ONNAS.md section 3, the unit of search:
//   (a) architecture step — loss on a validation batch, gradient w.r.t. alpha and
//       beta only, Adam;
//   (b) weight step — loss on a training batch, gradient w.r.t. the weights only,
//       Adam with betas (0, 0.999) (the research code's choice) or SGD with momentum.
// Both are backward passes through the same supernet, in the memory mode of
// `options.step` (nas/search_step.h): with sampling, one sample per step (drawn by
// the ArchSampler of nas/sampler.h) serves both passes. Compiled passes are cached
// by the sample's structure (a bounded LRU); one arena (the largest plan seen)
// serves every program.
//
//   Searcher s(space, options, params, seed);
//   s.set_progress(step, total);                        // cosine lr, expected alpha
//   auto r = s.step(train_x, train_y, val_x, val_y);   // tensors [B, C, H, W] / [B]
//   Genotype g = derive_genotype(space, params);
#pragma once

#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "graph/compile.h"
#include "graph/optimizer.h"
#include "nas/network.h"
#include "nas/sampler.h"
#include "nas/search_space.h"
#include "nas/search_step.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"

namespace onnas::nas {

enum class WeightOptimizer { adam, sgd };

struct SearchOptions {
  int64_t batch = 32;
  WeightOptimizer w_optimizer = WeightOptimizer::adam;
  float w_lr = 3e-3f;          // Adam betas (0, 0.999); with sgd, 0.025 is DARTS's choice
  float w_lr_min = 1e-4f;      // cosine schedule's floor
  float w_momentum = 0.9f;     // sgd only
  float w_weight_decay = 3e-4f;
  float w_grad_clip = 5.0f;
  float a_lr = 3e-4f;          // Adam betas (0.5, 0.999), as DARTS
  float a_weight_decay = 1e-3f;
  StepConfig step;             // memory mode, SBS variant, k_grad, micro-batches
  double explore_prob = 0.2;   // sampled modes: per-edge exploration
  // Weight gradients are stored only for the weights a step's sample trains (one
  // block, sized by the largest sample seen); the others are exactly zero and have no
  // storage. Off: every weight keeps its gradient in the store (same results).
  bool sparse_weight_grads = true;
};

struct StepResult {
  float arch_loss = 0;
  float weight_loss = 0;
  float weight_accuracy = 0;  // on the training batch, before the update
};

class Searcher {
 public:
  // Creates the supernet's parameters in `params` where missing (seeded by `seed`).
  Searcher(SearchSpace space, SearchOptions options, ParamStore& params, uint64_t seed);

  StepResult step(const Tensor& train_x, const Tensor& train_y, const Tensor& val_x, const Tensor& val_y);
  // Step t of `total`: the weight step's cosine learning rate, and the horizon of the
  // expected-alpha ranking.
  void set_progress(int64_t step, int64_t total);

  const SearchSpace& space() const { return space_; }
  const SearchOptions& options() const { return options_; }
  // The arena every program of this searcher runs in (the largest plan seen).
  size_t arena_bytes() const { return arena_.bytes(); }
  // The largest SBS side storage of the passes seen (0 without SBS).
  size_t side_bytes() const { return side_bytes_; }
  // The block holding the weight gradients of a step (sparse_weight_grads: the
  // largest sampled set seen; 0 when the store holds every gradient itself).
  size_t grad_bytes() const { return grad_block_.bytes(); }
  // Compiles (or finds) the passes of `sample` without running them.
  struct Passes {
    GradientPass weight, arch;
    // sparse_weight_grads: where each trained weight's gradient lives in the block
    // (index into weight_names(), offset in floats), and the block's size in bytes.
    std::vector<std::pair<size_t, size_t>> grad_layout;
    size_t grad_bytes = 0;
  };
  const Passes& prepare(const Sample& sample);
  // The samples the next `count` steps would draw if alpha did not move (for
  // planning before the run); the full sample in full mode.
  std::vector<Sample> upcoming_samples(int count) const;
  // Called after each backward pass, before its optimizer step (arch = true for the
  // architecture step): the gradients are in params.grad(). For --dump-grads.
  void set_gradient_hook(std::function<void(const ParamStore&, bool arch)> hook) { hook_ = std::move(hook); }
  // Every later step adds the time of each op it runs to `profile` (nullptr: off).
  void set_profile(graph::Profile* profile) { profile_ = profile; }
  // Starts over on a new task (the inner loop of meta-learning): optimizer state is
  // zeroed, the sampler's alpha history dropped and its draws reseeded by `seed`.
  // Compiled passes and the arena are kept. Parameter values are the caller's.
  void reset(uint64_t seed);
  // Checkpoints (atomic): every weight, alpha/beta and optimizer state of the store,
  // the sampler's alpha history, and `metadata`. load_checkpoint checks every tensor
  // before it copies any, restores them and returns the metadata.
  void save_checkpoint(const std::string& path, const std::map<std::string, std::string>& metadata) const;
  std::map<std::string, std::string> load_checkpoint(const std::string& path);
  // With frozen = true, step() runs only the weight step (TFML's warm-up).
  void set_arch_frozen(bool frozen) { arch_frozen_ = frozen; }
  const std::vector<std::string>& weight_names() const { return weight_names_; }
  const std::vector<std::string>& arch_names() const { return arch_names_; }
  size_t compiled_samples() const { return cache_.size(); }

 private:
  Passes& passes(const Sample& sample);
  SamplerOptions sampler_options() const;
  void lay_out_grads(Passes& p);
  void detach_grads();
  void install_grads(const Passes& p);

  static constexpr size_t kCacheSize = 2;
  SearchSpace space_;
  SearchOptions options_;
  ParamStore& params_;
  Rng rng_;
  ArchSampler sampler_;
  int64_t step_ = 0, total_ = 1;
  std::list<std::pair<std::string, std::unique_ptr<Passes>>> cache_;  // most recent first
  Arena arena_;
  size_t side_bytes_ = 0;
  Buffer grad_block_;                  // sparse_weight_grads: this step's weight gradients
  const Passes* installed_ = nullptr;  // whose layout the store's gradient views follow
  std::unique_ptr<graph::Optimizer> w_opt_;
  graph::Adam a_opt_;
  std::vector<std::string> weight_names_, arch_names_;
  std::function<void(const ParamStore&, bool)> hook_;
  graph::Profile* profile_ = nullptr;
  bool arch_frozen_ = false;
};

// A key naming a sample's structure (which ops and pairs get gradients).
std::string sample_key(const Sample& sample);

// Fraction of rows whose argmax of logits [N, K] equals the label (rows with label < 0 skipped).
float accuracy(const Tensor& logits, const Tensor& labels);

}  // namespace onnas::nas
