#include "nas/search.h"

#include <algorithm>
#include <cstring>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "graph/autodiff.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::nas {

std::string sample_key(const Sample& sample) {
  std::string key;
  for (const CellSample* c : {&sample.normal, &sample.reduce}) {
    for (const auto& edge : c->grad_ops) {
      for (uint8_t f : edge) key += char('0' + f);
      key += '|';
    }
    for (int p : c->grad_pair) key += fmt::format("{},", p);
    key += '/';
  }
  return key;
}

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
  if (options_.w_optimizer == WeightOptimizer::adam)
    w_opt_ = std::make_unique<graph::Adam>(graph::AdamOptions{.lr = options.w_lr, .beta1 = 0.0f, .beta2 = 0.999f,
                                                              .weight_decay = options.w_weight_decay,
                                                              .name = "weight_adam"});
  else
    w_opt_ = std::make_unique<graph::Sgd>(graph::SgdOptions{.lr = options.w_lr, .momentum = options.w_momentum,
                                                            .weight_decay = options.w_weight_decay,
                                                            .name = "weight_sgd"});
  // Parameters come from the full supernet's graph, so every sample finds them all.
  Graph g;
  emit_search_net(g, space_, options_.batch, full_sample(space_));
  Rng init_rng = rng_.fork(0);
  init_params(params_, g, init_rng);
  for (const graph::Value& v : g.values()) {
    if (v.kind != graph::ValueKind::param) continue;
    ParamKind kind = params_.entry(v.name).kind;
    if (kind == ParamKind::weight) weight_names_.push_back(v.name);
    if (kind == ParamKind::arch) arch_names_.push_back(v.name);
  }
  for (const auto& n : weight_names_) w_opt_->add_param(params_, n);
  for (const auto& n : arch_names_) a_opt_.add_param(params_, n);
  if (options_.sparse_weight_grads) detach_grads();
}

// No weight gradient has storage until a step installs its sample's layout.
void Searcher::detach_grads() {
  for (const auto& n : weight_names_) params_.set_grad_view(n, nullptr);
  installed_ = nullptr;
}

void Searcher::lay_out_grads(Passes& p) {
  std::vector<std::string> trained;
  for (const GradientPass::Labeled& l : p.weight.programs())
    for (std::string& name : l.program->grad_params()) trained.push_back(std::move(name));
  std::sort(trained.begin(), trained.end());
  size_t floats = 0;
  for (size_t i = 0; i < weight_names_.size(); ++i) {
    if (!std::binary_search(trained.begin(), trained.end(), weight_names_[i])) continue;
    p.grad_layout.emplace_back(i, floats);
    const size_t n = size_t(params_.get(weight_names_[i]).numel());
    floats += (n + 15) / 16 * 16;  // each gradient 64-byte aligned
  }
  p.grad_bytes = floats * sizeof(float);
}

// Points the store's weight gradients into the block as `p` lays them out (the rest
// at nothing). The block is zeroed by the step's zero_grads().
void Searcher::install_grads(const Passes& p) {
  if (installed_ == &p) return;
  float* base = static_cast<float*>(grad_block_.data());
  size_t next = 0;
  for (size_t i = 0; i < weight_names_.size(); ++i) {
    float* at = nullptr;
    if (next < p.grad_layout.size() && p.grad_layout[next].first == i) at = base + p.grad_layout[next++].second;
    params_.set_grad_view(weight_names_[i], at);
  }
  installed_ = &p;
}

SamplerOptions Searcher::sampler_options() const {
  return {.sample_ops = options_.step.samples_ops(), .sample_pairs = options_.step.samples_pairs(),
          .k_grad = options_.step.k_grad, .explore_prob = options_.explore_prob};
}

void Searcher::reset(uint64_t seed) {
  rng_ = Rng(seed);
  sampler_ = ArchSampler(space_, sampler_options(), rng_.fork(1).next_u64());
  for (const auto& e : params_.entries())
    if (e->kind == ParamKind::state) e->tensor.zero();
  step_ = 0;
  set_progress(0, total_);
}

namespace {
bool checkpointed(ParamKind k) { return k == ParamKind::weight || k == ParamKind::arch || k == ParamKind::state; }
std::string history_name(bool reduction, size_t i) {
  return fmt::format("sampler.history.{}.{}", reduction ? "reduce" : "normal", i);
}
}  // namespace

void Searcher::save_checkpoint(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  std::vector<NamedTensor> tensors;
  for (const auto& e : params_.entries())
    if (checkpointed(e->kind)) tensors.push_back({e->name, e->tensor});
  for (bool r : {false, true}) {
    const auto& h = sampler_.history(r);
    for (size_t i = 0; i < h.size(); ++i)
      tensors.push_back({history_name(r, i), Tensor(const_cast<float*>(h[i].data()), Shape{int64_t(h[i].size())})});
  }
  write_safetensors(path, tensors, metadata);
}

std::map<std::string, std::string> Searcher::load_checkpoint(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  std::vector<std::pair<Tensor, const SafetensorsTensor*>> copies;
  for (const auto& e : params_.entries()) {
    if (!checkpointed(e->kind)) continue;
    const SafetensorsTensor* t = f.find(e->name);
    if (!t) fail("{}: checkpoint has no {} (a checkpoint of another search configuration?)", path, e->name);
    if (t->dtype != e->tensor.dtype() || t->shape != e->tensor.shape())
      fail("{}: {} is {} {}, this search needs {} {}", path, e->name, dtype_name(t->dtype), t->shape.str(),
           dtype_name(e->tensor.dtype()), e->tensor.shape().str());
    copies.emplace_back(e->tensor, t);
  }
  std::deque<std::vector<float>> history[2];
  for (bool r : {false, true})
    for (size_t i = 0;; ++i) {
      const SafetensorsTensor* t = f.find(history_name(r, i));
      if (!t) break;
      if (t->dtype != DType::f32 || t->shape.rank() != 1) fail("{}: {} is not an f32 vector", path, t->name);
      const float* p = static_cast<const float*>(t->data.data());
      history[r].emplace_back(p, p + t->shape.numel());
    }
  ArchSampler restored = sampler_;
  restored.set_history(false, std::move(history[0]));  // throws before anything changed
  restored.set_history(true, std::move(history[1]));
  for (auto& [dst, src] : copies) std::memcpy(dst.data(), src->data.data(), dst.bytes());
  sampler_ = std::move(restored);
  return f.metadata;
}

void Searcher::set_progress(int64_t step, int64_t total) {
  step_ = step;
  total_ = total;
  w_opt_->set_lr(graph::cosine_lr(options_.w_lr, options_.w_lr_min, step, total));
}

Searcher::Passes& Searcher::passes(const Sample& sample) {
  std::string key = sample_key(sample);
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if (it->first != key) continue;
    cache_.splice(cache_.begin(), cache_, it);
    return *cache_.front().second;
  }
  auto p = std::make_unique<Passes>(Passes{
      GradientPass(space_, options_.step, options_.batch, sample, ParamKind::weight, params_),
      GradientPass(space_, options_.step, options_.batch, sample, ParamKind::arch, params_), {}, 0});
  size_t need = std::max(p->weight.arena_bytes(), p->arch.arena_bytes());
  if (need > arena_.bytes()) {
    arena_ = Arena();  // free the old arena before the larger one is allocated
    arena_ = Arena(need);
  }
  side_bytes_ = std::max({side_bytes_, p->weight.side_bytes(), p->arch.side_bytes()});
  if (options_.sparse_weight_grads) {
    lay_out_grads(*p);
    if (p->grad_bytes > grad_block_.bytes()) {
      detach_grads();  // no view into the old block
      grad_block_ = Buffer();
      grad_block_ = Buffer(p->grad_bytes);
    }
  }
  cache_.emplace_front(std::move(key), std::move(p));
  if (cache_.size() > kCacheSize) {
    if (installed_ == cache_.back().second.get()) installed_ = nullptr;
    cache_.pop_back();
  }
#ifdef __GLIBC__
  // Compiling leaves the heap fragmented with freed graph copies; hand the free pages
  // back so the process's footprint stays near the planned one.
  malloc_trim(0);
#endif
  return *cache_.front().second;
}

const Searcher::Passes& Searcher::prepare(const Sample& sample) { return passes(sample); }

std::vector<Sample> Searcher::upcoming_samples(int count) const {
  if (!options_.step.samples_ops() && !options_.step.samples_pairs()) return {full_sample(space_)};
  ArchSampler copy = sampler_;  // leaves this searcher's draws untouched
  std::vector<Sample> out;
  for (int i = 0; i < count; ++i) out.push_back(copy.draw(params_, step_ + i, total_));
  return out;
}

StepResult Searcher::step(const Tensor& train_x, const Tensor& train_y, const Tensor& val_x, const Tensor& val_y) {
  StepResult r;
  const bool sampling = options_.step.samples_ops() || options_.step.samples_pairs();
  Sample sample = sampling ? sampler_.draw(params_, step_, total_) : full_sample(space_);
  Passes& p = passes(sample);

  if (!arch_frozen_) {
    params_.zero_grads();
    r.arch_loss = p.arch.run(arena_, params_, val_x, val_y, profile_).loss;
    if (hook_) hook_(params_, true);
    sampler_.before_update(params_);
    a_opt_.step(params_);
    sampler_.after_update(params_);
  }

  if (options_.sparse_weight_grads) install_grads(p);
  params_.zero_grads();
  PassResult w = p.weight.run(arena_, params_, train_x, train_y, profile_);
  r.weight_loss = w.loss;
  r.weight_accuracy = float(w.correct) / float(options_.batch);
  if (hook_) hook_(params_, false);
  if (options_.w_grad_clip > 0) graph::clip_grad_norm(params_, weight_names_, options_.w_grad_clip);
  w_opt_->step(params_);
  return r;
}

}  // namespace onnas::nas
