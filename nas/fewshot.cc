#include "nas/fewshot.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "graph/autodiff.h"
#include "graph/optimizer.h"
#include "nas/network.h"
#include "runtime/error.h"

namespace onnas::nas {

FewShotAdapter::FewShotAdapter(SearchSpace space, AdaptOptions options, const ParamStore& start)
    : space_(std::move(space)), options_(std::move(options)) {
  space_.validate();
  const data::EpisodeShape& e = options_.episode;
  if (e.n_way != space_.classes)
    fail("adaptation: {}-way tasks need a classifier of {} classes (the space has {})", e.n_way, e.n_way,
         space_.classes);
  if (options_.search_steps < 0 || options_.finetune_steps < 0)
    fail("adaptation: search and fine-tuning steps must not be negative");
  options_.search.batch = e.n_way * e.k_shot;
  init_search_params(start_, space_, 0);
  for (const auto& en : start_.entries()) {
    if (en->kind != ParamKind::weight && en->kind != ParamKind::arch) continue;
    const ParamStore::Entry* src = start.find(en->name);
    if (!src) fail("adaptation: the starting supernet has no {}", en->name);
    if (src->tensor.shape() != en->tensor.shape())
      fail("adaptation: the starting supernet's {} is {}, the space needs {}", en->name, src->tensor.shape().str(),
           en->tensor.shape().str());
    std::memcpy(en->tensor.data(), src->tensor.data(), en->tensor.bytes());
    names_.push_back(en->name);
  }
  searcher_ = std::make_unique<Searcher>(space_, options_.search, work_, 0);

  graph::Graph g;
  query_net_ = emit_search_net(g, space_, e.n_way * e.q_query);
  query_ = graph::compile(g, {.outputs = {query_net_.logits}});
}

void FewShotAdapter::ensure_arena(size_t bytes) {
  if (arena_.bytes() < bytes) {
    arena_ = Arena();
    arena_ = Arena(bytes);
  }
}

float FewShotAdapter::evaluate_supernet(const Task& task) {
  ensure_arena(query_.arena_bytes());
  query_.run(arena_, work_, {{query_net_.x, task.query_x}});
  return accuracy(query_.output(arena_, query_net_.logits), task.query_y);
}

float FewShotAdapter::finetune_discrete(const Genotype& genotype, const Task& task, uint64_t seed) {
  const int64_t ns = task.support_x.shape()[0], nq = task.query_x.shape()[0];
  graph::Graph g;
  SearchNet net = emit_discrete_net(g, space_, genotype, ns, /*training=*/true);
  // The searched weights where the discrete network has the same tensor; affine BN
  // and running statistics start fresh.
  ParamStore params;
  for (const graph::Value& v : g.values()) {
    if (v.kind != graph::ValueKind::param || params.contains(v.name)) continue;
    const ParamStore::Entry* src = work_.find(v.name);
    if (!src || src->kind != ParamKind::weight || src->tensor.shape() != v.type.shape) continue;
    Tensor w = params.add_weight(v.name, v.type.shape);
    std::memcpy(w.data(), src->tensor.data(), w.bytes());
  }
  Rng rng(seed);
  init_params(params, g, rng);
  if (options_.head == HeadInit::zero) zero_head(params);
  const std::vector<graph::ValueId> weights = params_of_kind(g, params, ParamKind::weight);
  std::vector<std::string> weight_names;
  for (graph::ValueId w : weights) weight_names.push_back(g.name(w));
  std::vector<graph::ValueId> grads = graph::backward(g, net.loss, weights);
  graph::CompileOptions co{.outputs = {net.loss}, .param_grads = {}};
  for (size_t i = 0; i < weights.size(); ++i) co.param_grads.emplace_back(weights[i], grads[i]);
  graph::Program train = graph::compile(g, co);

  graph::Graph ge;
  SearchNet eval_net = emit_discrete_net(ge, space_, genotype, nq, /*training=*/true);
  graph::Program eval = graph::compile(ge, {.outputs = {eval_net.logits}, .param_grads = {}});

  const size_t need = std::max(train.arena_bytes(), eval.arena_bytes());
  discrete_arena_bytes_ = std::max(discrete_arena_bytes_, need);
  ensure_arena(need);
  graph::Sgd sgd({.lr = options_.finetune_lr, .momentum = 0.9f, .weight_decay = options_.finetune_weight_decay,
                  .nesterov = true, .name = "finetune_sgd"});
  for (const auto& n : weight_names) sgd.add_param(params, n);
  for (int s = 0; s < options_.finetune_steps; ++s) {
    sgd.set_lr(graph::cosine_lr(options_.finetune_lr, 0.0f, s, options_.finetune_steps));
    params.zero_grads();
    train.run(arena_, params, {{net.x, task.support_x}, {net.labels, task.support_y}});
    float loss = train.output(arena_, net.loss).f32()[0];
    if (!std::isfinite(loss)) fail("adaptation: fine-tuning step {} produced a non-finite loss ({})", s, loss);
    graph::clip_grad_norm(params, weight_names, 5.0);
    sgd.step(params);
  }
  eval.run(arena_, params, {{eval_net.x, task.query_x}});
  return accuracy(eval.output(arena_, eval_net.logits), task.query_y);
}

AdaptResult FewShotAdapter::adapt(const Task& task, uint64_t seed) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const std::string& name : names_) {
    Tensor src = start_.get(name);
    std::memcpy(work_.get(name).data(), src.data(), src.bytes());
  }
  if (options_.head == HeadInit::zero) zero_head(work_);
  searcher_->reset(seed);
  search_on_support(*searcher_, task, options_.search_steps, "adaptation: search");
  AdaptResult r;
  r.genotype = derive_genotype(space_, work_);
  r.supernet_accuracy = evaluate_supernet(task);
  r.accuracy = options_.finetune_steps > 0 ? finetune_discrete(r.genotype, task, Rng(seed).fork(7).next_u64())
                                           : r.supernet_accuracy;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace onnas::nas
