#include "nas/search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/ranges.h>

#include "graph/autodiff.h"
#include "nas/search_checkpoint.h"
#include "runtime/heap.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::nas {

float accuracy(const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  int64_t correct = 0, counted = 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t y = labels.i32()[i];
    if (y < 0) continue;
    const float* row = logits.f32() + i * k;
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j)
      if (row[j] > row[best]) best = j;
    correct += best == y;
    counted++;
  }
  return counted ? float(correct) / float(counted) : 0.0f;
}

size_t CompiledStep::table_bytes() const { return weight_.schedule().table_bytes() + arch_.schedule().table_bytes(); }
size_t CompiledStep::planning_bytes() const {
  return weight_.schedule().planning_bytes() + arch_.schedule().planning_bytes();
}
void CompiledStep::release_planning_data() {
  weight_.release_planning_data();
  arch_.release_planning_data();
}

CompiledStep::CompiledStep(const SearchSpace& space, const SearchOptions& options, const ParamStore& params,
                           bool allocate_grad_block, std::span<const std::string> weight_names)
    : gates_(space, options.step),
      weight_(space, options.step, options.batch, gates_, ParamKind::weight, params),
      arch_(space, options.step, options.batch, gates_, ParamKind::arch, params),
      sparse_(options.sparse_weight_grads) {
  std::vector<std::string> names(weight_names.begin(), weight_names.end());
  if (names.empty())
    for (const auto& e : params.entries())
      if (e->kind == ParamKind::weight) names.push_back(e->name);
  block_ = GradientBlock(weight_, params, names, gates_.space().get(), allocate_grad_block && sparse_);
}

WeightOptimizer parse_weight_optimizer(std::string_view name) {
  if (name == "adam") return WeightOptimizer::adam;
  if (name == "sgd") return WeightOptimizer::sgd;
  if (name == "adam-bf16") return WeightOptimizer::adam_bf16;
  if (name == "adam-factored") return WeightOptimizer::adam_factored;
  fail("unknown weight optimizer '{}' ({})", name, fmt::join(kWeightOptimizerNames, ", "));
}

size_t optimizer_state_bytes(const ParamStore& params, const SearchOptions& options) {
  size_t bytes = 0;
  for (const auto& e : params.entries()) {
    const size_t b = e->tensor.bytes();
    if (e->kind == ParamKind::weight) {
      // v and a step count (beta1 = 0: no m)
      if (options.w_optimizer == WeightOptimizer::adam) bytes += b + 4;
      else if (options.w_optimizer == WeightOptimizer::adam_bf16) bytes += b / 2 + 4;
      else if (options.w_optimizer == WeightOptimizer::adam_factored && e->tensor.shape().rank() >= 2)
        bytes += size_t(e->tensor.shape()[0] + e->tensor.numel() / e->tensor.shape()[0]) * 4 + 4;
      else if (options.w_optimizer == WeightOptimizer::adam_factored) bytes += b + 4;
      else if (options.w_momentum != 0.0f) bytes += b;
    } else if (e->kind == ParamKind::arch) {
      bytes += 3 * b;  // m, v and a step count per element
    }
  }
  return bytes;
}

Searcher::Searcher(SearchSpace space, SearchOptions options, ParamStore& params, uint64_t seed)
    : space_(std::move(space)),
      options_(options),
      params_(params),
      rng_(seed),
      sampler_(space_, sampler_options(), rng_.fork(1).next_u64()),
      a_opt_({.lr = options.a_lr, .beta1 = 0.5f, .beta2 = 0.999f, .weight_decay = options.a_weight_decay,
              .name = "arch_adam"}) {
  space_.validate();
  options_.step.validate(space_, options_.batch);
  if (options_.w_optimizer != WeightOptimizer::sgd)
    w_opt_ = std::make_unique<graph::Adam>(graph::AdamOptions{
        .lr = options.w_lr, .beta1 = 0.0f, .beta2 = 0.999f, .weight_decay = options.w_weight_decay,
        .second_moment = options_.w_optimizer == WeightOptimizer::adam_bf16 ? DType::bf16 : DType::f32,
        .factored = options_.w_optimizer == WeightOptimizer::adam_factored,
        .name = "weight_adam"});
  else
    w_opt_ = std::make_unique<graph::Sgd>(graph::SgdOptions{.lr = options.w_lr, .momentum = options.w_momentum,
                                                            .weight_decay = options.w_weight_decay,
                                                            .name = "weight_sgd"});
  // Parameters come from the full supernet's graph, so every sample finds them all.
  // With sparse gradients, the weights' gradients never get storage of their own.
  const bool stored = params_.gradients_of_weights_stored();
  if (options_.sparse_weight_grads) params_.store_weight_gradients(false);
  // The store's entries and the names below live as long as the search: they are made
  // once the supernet's graph is freed and its blocks merged (release_free_heap), so they
  // lie together, not scattered among the graph's holes keeping their pages resident.
  ParamList list;
  {
    Graph g;
    emit_search_net(g, space_, options_.batch);
    list = param_list(g);
  }
  release_free_heap();
  Rng init_rng = rng_.fork(0);
  init_params(params_, list, init_rng);
  for (size_t p = 0; p < list.items.size(); ++p) {
    const ParamKind kind = params_.entry(list.name(p)).kind;
    if (kind == ParamKind::weight) weight_names_.emplace_back(list.name(p));
    if (kind == ParamKind::arch) arch_names_.emplace_back(list.name(p));
  }
  params_.store_weight_gradients(stored);
  const size_t entries = size_t(space_.num_edges() * space_.num_ops());
  for (int r = 0; r < 2; ++r) {
    alpha_trained_[r].assign(entries, 1);
    for (int j = 0; j < space_.nodes; ++j) beta_trained_[r].emplace_back(space_.pairs(j).size(), 1);
  }
  for (const auto& n : weight_names_) w_opt_->add_param(params_, n);
  for (const auto& n : arch_names_) {
    const bool reduction = n.find(".reduce") != std::string::npos;
    const uint8_t* mask = nullptr;
    if (n.rfind("alpha.", 0) == 0) mask = alpha_trained_[reduction].data();
    else mask = beta_trained_[reduction][size_t(std::stoi(n.substr(n.rfind('.') + 1)))].data();
    a_opt_.add_param(params_, n, mask);
  }
  compiled_ = std::make_unique<CompiledStep>(space_, options_, params_, /*allocate_grad_block=*/true, weight_names_);
  if (options_.sparse_weight_grads) compiled_->block().detach(params_);
  compiled_->release_planning_data();
  release_free_heap();  // the graphs and buffer lists of compilation are gone
  if (compiled_->gates().space()) gate_values_ = graph::GateValues(*compiled_->gates().space());
  arena_ = Arena(std::max<size_t>(compiled_->arena_bytes(), kAlignment));
  sample_ = full_sample(space_);
  set_progress(0, total_);
}

SamplerOptions Searcher::sampler_options() const {
  return {.sample_ops = options_.step.samples_ops(), .sample_pairs = options_.step.samples_pairs(),
          .k_grad = options_.step.k_grad, .explore_prob = options_.explore_prob};
}

void Searcher::reserve_arena(size_t bytes) {
  if (arena_.bytes() >= bytes) return;
  arena_ = Arena();  // the old block goes back before the new one is taken
  arena_ = Arena(bytes);
}

void Searcher::reset(uint64_t seed) {
  rng_ = Rng(seed);
  sampler_ = ArchSampler(space_, sampler_options(), rng_.fork(1).next_u64());
  for (const auto& e : params_.entries())
    if (e->kind == ParamKind::state) e->tensor.zero();
  set_progress(0, total_);
}

void Searcher::save_checkpoint(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  if (temperature_ == 1.0f) return save_search_checkpoint(path, params_, sampler_, metadata);
  std::map<std::string, std::string> md = metadata;
  md["alpha_temperature"] = fmt::format("{}", temperature_);  // shortest exact form
  save_search_checkpoint(path, params_, sampler_, md);
}

std::map<std::string, std::string> Searcher::load_checkpoint(const std::string& path,
                                                            const CheckpointMetadataCheck& check_metadata) {
  std::map<std::string, std::string> md = load_search_checkpoint(path, params_, sampler_, check_metadata);
  // The logits in the file are in the unit of its temperature.
  temperature_ = md.count("alpha_temperature")
                     ? float(metadata_number(md, "alpha_temperature", path, 1e-6, 1e6))
                     : 1.0f;
  a_opt_.set_lr(options_.a_lr / temperature_);
  return md;
}

void Searcher::set_temperature(float t) {
  if (!(t > 0.0f) || !std::isfinite(t)) fail("search: the temperature of alpha/beta must be positive (got {})", t);
  if (t != temperature_) {
    const float scale = temperature_ / t;
    for (const std::string& name : arch_names_) {
      Tensor a = params_.entry(name).tensor;
      float* p = a.f32();
      for (int64_t i = 0; i < a.numel(); ++i) p[i] *= scale;
    }
    temperature_ = t;
  }
  a_opt_.set_lr(options_.a_lr / temperature_);
}

void Searcher::set_progress(int64_t step, int64_t total) {
  step_ = step;
  total_ = total;
}

StepResult Searcher::step(const Tensor& train_x, const Tensor& train_y, const Tensor& val_x, const Tensor& val_y) {
  StepResult r;
  const StepGates& gates = compiled_->gates();
  const graph::GateValues* gv = nullptr;
  if (gates.space()) {
    sampler_.draw(params_, step_, total_, sample_);
    gates.apply(sample_, gate_values_);
    gv = &gate_values_;
    for (int c = 0; c < 2; ++c) {
      gates.alpha_trained(gate_values_, c == 1, alpha_trained_[c]);
      for (int j = 0; j < space_.nodes; ++j) gates.beta_trained(gate_values_, c == 1, j, beta_trained_[c][size_t(j)]);
    }
  }
  w_opt_->set_lr(graph::cosine_lr(options_.w_lr, options_.w_lr_min, step_, total_));
  if (options_.a_lr_cosine) a_opt_.set_lr(graph::cosine_lr(options_.a_lr, 0.0f, step_, total_) / temperature_);

  if (!arch_frozen_) {
    params_.zero_grads();
    r.arch_loss = compiled_->arch().run(arena_, params_, val_x, val_y, gv, profile_).loss;
    if (hook_) hook_(params_, true);
    sampler_.before_update(params_);
    a_opt_.step(params_);
    sampler_.after_update(params_, alpha_trained_[0], alpha_trained_[1]);
  }

  GradientBlock& block = compiled_->block();
  if (options_.sparse_weight_grads) block.install(params_, gv);
  else block.update_trained(gv);
  for (size_t i = 0; i < weight_names_.size(); ++i) w_opt_->set_trained(i, block.trained()[i] != 0);
  params_.zero_grads();
  PassResult w = compiled_->weight().run(arena_, params_, train_x, train_y, gv, profile_);
  r.weight_loss = w.loss;
  r.weight_accuracy = float(w.correct) / float(options_.batch);
  if (hook_) hook_(params_, false);
  if (options_.w_grad_clip > 0) graph::clip_grad_norm(params_, weight_names_, options_.w_grad_clip);
  w_opt_->step(params_);
  ++step_;
  return r;
}

}  // namespace onnas::nas
