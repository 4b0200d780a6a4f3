#include "nas/search.h"

#include "graph/autodiff.h"

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
      a_opt_({.lr = options.a_lr, .beta1 = 0.5f, .beta2 = 0.999f, .weight_decay = options.a_weight_decay,
              .name = "arch_adam"}) {
  space_.validate();
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
}

void Searcher::set_progress(int64_t step, int64_t total) {
  w_opt_->set_lr(graph::cosine_lr(options_.w_lr, options_.w_lr_min, step, total));
}

Searcher::Compiled& Searcher::programs(const Sample& sample) {
  std::string key = sample_key(sample);
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  auto c = std::make_unique<Compiled>();
  for (bool arch : {false, true}) {
    Graph g;
    SearchNet net = emit_search_net(g, space_, options_.batch, sample);
    std::vector<ValueId> wrt;
    for (const graph::Value& v : g.values())
      if (v.kind == graph::ValueKind::param &&
          params_.entry(v.name).kind == (arch ? ParamKind::arch : ParamKind::weight))
        wrt.push_back(ValueId(&v - g.values().data()));
    std::vector<ValueId> grads = graph::backward(g, net.loss, wrt);
    graph::CompileOptions opts;
    opts.outputs = {net.loss, net.logits};
    for (size_t i = 0; i < wrt.size(); ++i) opts.param_grads.emplace_back(wrt[i], grads[i]);
    (arch ? c->arch : c->weight) = graph::compile(g, opts);
    (arch ? c->arch_net : c->weight_net) = net;
  }
  size_t need = std::max(c->weight.arena_bytes(), c->arch.arena_bytes());
  if (need > arena_.bytes()) arena_ = Arena(need);
  return *cache_.emplace(key, std::move(c)).first->second;
}

void Searcher::prepare(const Sample& sample) { current_ = &programs(sample); }

StepResult Searcher::step(const Tensor& train_x, const Tensor& train_y, const Tensor& val_x, const Tensor& val_y) {
  StepResult r;
  Sample sample = full_sample(space_);
  Compiled& c = programs(sample);
  current_ = &c;

  params_.zero_grads();
  c.arch.run(arena_, params_, {{c.arch_net.x, val_x}, {c.arch_net.labels, val_y}});
  r.arch_loss = c.arch.output(arena_, c.arch_net.loss).f32()[0];
  if (hook_) hook_(params_, true);
  a_opt_.step(params_);

  params_.zero_grads();
  c.weight.run(arena_, params_, {{c.weight_net.x, train_x}, {c.weight_net.labels, train_y}});
  r.weight_loss = c.weight.output(arena_, c.weight_net.loss).f32()[0];
  r.weight_accuracy = accuracy(c.weight.output(arena_, c.weight_net.logits), train_y);
  if (hook_) hook_(params_, false);
  if (options_.w_grad_clip > 0) graph::clip_grad_norm(params_, weight_names_, options_.w_grad_clip);
  w_opt_->step(params_);
  return r;
}

}  // namespace onnas::nas
