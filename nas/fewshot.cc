#include "nas/fewshot.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <string_view>

#include "graph/autodiff.h"
#include "graph/optimizer.h"
#include "nas/network.h"
#include "runtime/error.h"
#include "runtime/heap.h"

namespace onnas::nas {
namespace {

// The supernet on one chunk of the query set, its batch norms normalized by given
// (whole query set) statistics.
SearchNet emit_chunk_net(graph::Graph& g, const SearchSpace& space, int64_t chunk) {
  return emit_network(g, space, chunk, {.track_running = true, .training = false},
                      search_body(space, ungated(space), {.track_running = true, .training = false}));
}

// The genotypes the discrete network's memory is estimated on: one op on every edge,
// for each candidate op, each node reading the two newest states (the most kept alive).
std::vector<Genotype> probe_genotypes(const SearchSpace& space) {
  std::vector<Genotype> r;
  for (OpKind op : space.ops) {
    if (std::string_view(op_kind_name(op)) == "none") continue;
    Genotype g;
    for (int red = 0; red < 2; ++red)
      for (int j = 0; j < space.nodes; ++j) (red ? g.reduce : g.normal).push_back({{op, j}, {op, j + 1}});
    r.push_back(std::move(g));
  }
  return r;
}

// The fine-tuning step of a discrete network: forward, loss, and the gradients of
// `weights` accumulated into the store.
graph::Program compile_finetune(graph::Graph& g, const SearchNet& net, const std::vector<graph::ValueId>& weights) {
  std::vector<graph::ValueId> grads = graph::backward(g, net.loss, weights);
  graph::CompileOptions co{.outputs = {net.loss}, .param_grads = {}};
  for (size_t i = 0; i < weights.size(); ++i) co.param_grads.emplace_back(weights[i], grads[i]);
  return graph::compile(g, co);
}

// The arenas the discrete network of `genotype` needs: fine-tuning on the support set,
// and (chunk > 0) the query evaluation in chunks of `chunk`.
std::pair<size_t, size_t> discrete_needs(const SearchSpace& space, const data::EpisodeShape& e,
                                         const Genotype& genotype, int64_t chunk) {
  const int64_t ns = e.n_way * e.k_shot, nq = e.n_way * e.q_query;
  graph::Graph g;
  SearchNet net = emit_discrete_net(g, space, genotype, ns, /*training=*/true);
  std::vector<graph::ValueId> weights;
  for (const graph::Value& v : g.values())
    if (v.kind == graph::ValueKind::param && !v.name.ends_with("running_mean") && !v.name.ends_with("running_var"))
      weights.push_back(graph::ValueId(&v - g.values().data()));
  const size_t train = compile_finetune(g, net, weights).arena_bytes();
  if (chunk == 0) return {train, 0};
  graph::Graph ge;
  SearchNet en = emit_discrete_net(ge, space, genotype, chunk, /*training=*/chunk == nq);
  if (chunk == nq) return {train, graph::compile(ge, {.outputs = {en.logits}}).arena_bytes()};
  return {train, ChunkedEval(std::move(ge), en.x, en.logits).arena_bytes()};
}

}  // namespace

size_t estimate_finetune_arena(const SearchSpace& space, const data::EpisodeShape& episode) {
  size_t r = 0;
  for (const Genotype& p : probe_genotypes(space)) r = std::max(r, discrete_needs(space, episode, p, 0).first);
  return r;
}

FewShotAdapter::FewShotAdapter(SearchSpace space, AdaptOptions options, ParamStore start)
    : space_(std::move(space)), options_(std::move(options)), start_(std::move(start)) {
  space_.validate();
  const data::EpisodeShape& e = options_.episode;
  if (e.n_way != space_.classes)
    fail("adaptation: {}-way tasks need a classifier of {} classes (the space has {})", e.n_way, e.n_way,
         space_.classes);
  if (options_.search_steps < 0 || options_.finetune_steps < 0)
    fail("adaptation: search and fine-tuning steps must not be negative");
  options_.search.batch = e.n_way * e.k_shot;
  {  // every parameter of the space's supernet, with its shape (checked on the graph: no copy)
    graph::Graph g;
    emit_search_net(g, space_, 2);
    for (const graph::Value& v : g.values()) {
      if (v.kind != graph::ValueKind::param) continue;
      const ParamStore::Entry* src = start_.find(v.name);
      if (!src) fail("adaptation: the starting supernet has no {}", v.name);
      if (src->tensor.shape() != v.type.shape)
        fail("adaptation: the starting supernet's {} is {}, the space needs {}", v.name, src->tensor.shape().str(),
             v.type.shape.str());
      names_.push_back(v.name);
    }
  }
  searcher_ = std::make_unique<Searcher>(space_, options_.search, work_, 0);
  search_plan_bytes_ = searcher_->arena_bytes();

  // The discrete network's fine-tuning on the support set, estimated before any task.
  const int64_t nq = e.n_way * e.q_query;
  const size_t finetune = estimate_finetune_arena(space_, e);

  int64_t chunk = options_.query_chunk;
  if (chunk == AdaptOptions::kFitQueryChunk) {
    // The largest chunk whose evaluation fits beside what the task needs anyway.
    const size_t room = std::max(search_plan_bytes_, finetune);
    chunk = 1;
    for (int64_t c = nq; c >= 1; --c) {
      if (nq % c != 0) continue;
      graph::Graph g;
      const SearchNet net = c == nq ? emit_search_net(g, space_, c) : emit_chunk_net(g, space_, c);
      const size_t need = c == nq ? graph::compile(g, {.outputs = {net.logits}}).arena_bytes()
                                  : ChunkedEval(std::move(g), net.x, net.logits).arena_bytes();
      if (need <= room) {
        chunk = c;
        break;
      }
    }
  } else if (chunk == 0) {
    chunk = nq;
  } else if (chunk < 0 || chunk > nq || nq % chunk != 0) {
    fail("adaptation: a query chunk of {} images does not divide the query set of {} ({} ways x {} queries)", chunk,
         nq, e.n_way, e.q_query);
  }
  const int64_t micro_batch = options_.search.batch / std::max(1, options_.search.step.split);
  const bool grouped = options_.query_stats == AdaptOptions::QueryStats::micro_batch ||
                       (options_.query_stats == AdaptOptions::QueryStats::automatic && options_.search.step.split > 1);
  if (grouped) {
    if (micro_batch < 1 || nq % micro_batch != 0)
      fail("adaptation: the query set of {} images cannot be measured in groups of a micro-batch's {} images", nq,
           micro_batch);
    query_group_ = true;
    chunk = micro_batch;
  }
  plan_query(chunk);
  for (const Genotype& p : probe_genotypes(space_)) {
    const auto [train, eval] = discrete_needs(space_, e, p, chunk);
    discrete_estimate_bytes_ = std::max({discrete_estimate_bytes_, train, eval});
  }
  release_free_heap();  // what compiling the probes left in the heap
  searcher_->reserve_arena(std::max({search_plan_bytes_, query_arena_bytes(), discrete_estimate_bytes_}));
  planned_arena_bytes_ = searcher_->arena_bytes();
}

void FewShotAdapter::plan_query(int64_t chunk) {
  const int64_t nq = options_.episode.n_way * options_.episode.q_query;
  query_chunk_ = chunk;
  graph::Graph g;
  if (chunk == nq || query_group_) {
    // The whole query set, or one group of it with its own statistics.
    query_net_ = emit_search_net(g, space_, chunk);
    query_ = graph::compile(g, {.outputs = {query_net_.logits}});
    query_.release_planning_data();
    if (chunk < nq) logits_ = Buffer(size_t(nq * space_.classes) * sizeof(float));
    return;
  }
  query_net_ = emit_chunk_net(g, space_, chunk);
  Rng rng(0);
  init_params(work_, g, rng);  // the running statistics the chunks are normalized by
  query_chunked_.emplace(g, query_net_.x, query_net_.logits);
  logits_ = Buffer(size_t(nq * space_.classes) * sizeof(float));
}

size_t FewShotAdapter::table_bytes() const {
  return searcher_->compiled().table_bytes() + logits_.bytes() +
         (query_chunked_ ? query_chunked_->table_bytes() : query_.table_bytes());
}

float FewShotAdapter::evaluate_supernet(const Task& task) {
  if (query_chunked_) {
    Tensor logits(logits_.data(), Shape{task.query_x.shape()[0], space_.classes});
    query_chunked_->run(searcher_->arena(), work_, task.query_x, logits);
    return accuracy(logits, task.query_y);
  }
  const int64_t nq = task.query_x.shape()[0];
  if (query_group_ && query_chunk_ < nq) {
    interleave_classes(task.query_x, task.query_y, space_.classes);  // groups of every class, as the micro-batches
    // Group by group, each normalized by its own statistics: slices of the query set
    // (contiguous, leading dimension) in, the group's logits out.
    Shape group_shape = task.query_x.shape();
    group_shape[0] = query_chunk_;
    const int64_t image = task.query_x.numel() / nq, k = space_.classes;
    Tensor logits(logits_.data(), Shape{nq, k});
    for (int64_t first = 0; first < nq; first += query_chunk_) {
      Tensor group(task.query_x.f32() + first * image, group_shape);
      query_.run(searcher_->arena(), work_, {{query_net_.x, group}});
      const Tensor out = query_.output(searcher_->arena(), query_net_.logits);
      std::copy_n(out.f32(), query_chunk_ * k, logits.f32() + first * k);
    }
    return accuracy(logits, task.query_y);
  }
  query_.run(searcher_->arena(), work_, {{query_net_.x, task.query_x}});
  return accuracy(query_.output(searcher_->arena(), query_net_.logits), task.query_y);
}

float FewShotAdapter::finetune_discrete(const Genotype& genotype, const Task& task, uint64_t seed) {
  const int64_t ns = task.support_x.shape()[0], nq = task.query_x.shape()[0];
  const bool chunked = query_chunk_ < nq;
  // The search's values are dead: the arena's pages leave the resident set while the
  // discrete network is compiled (its graphs would otherwise sit on top of them).
  searcher_->arena().discard_pages();
  ParamStore params;
  std::vector<std::string> weight_names;
  SearchNet net, eval_net;
  graph::Program train, eval;
  std::optional<ChunkedEval> eval_chunked;
  {  // the graphs die once compiled: running needs the programs only
    graph::Graph g;
    net = emit_discrete_net(g, space_, genotype, ns, /*training=*/true);
    // The searched weights where the discrete network has the same tensor; affine BN
    // and running statistics start fresh.
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
    for (graph::ValueId w : weights) weight_names.push_back(g.name(w));
    train = compile_finetune(g, net, weights);
    train.release_planning_data();

    // The query set in one program (batch statistics of the whole set), or in chunks
    // with the same statistics.
    graph::Graph ge;
    eval_net = emit_discrete_net(ge, space_, genotype, chunked ? query_chunk_ : nq, /*training=*/!chunked);
    if (chunked) {
      eval_chunked.emplace(std::move(ge), eval_net.x, eval_net.logits);
    } else {
      eval = graph::compile(ge, {.outputs = {eval_net.logits}, .param_grads = {}});
      eval.release_planning_data();
    }
  }
  release_free_heap();

  const size_t need = std::max(train.arena_bytes(), chunked ? eval_chunked->arena_bytes() : eval.arena_bytes());
  discrete_arena_bytes_ = std::max(discrete_arena_bytes_, need);
  searcher_->reserve_arena(need);  // grows only for a genotype beyond the estimate
  Arena& arena = searcher_->arena();
  graph::Sgd sgd({.lr = options_.finetune_lr, .momentum = 0.9f, .weight_decay = options_.finetune_weight_decay,
                  .nesterov = true, .name = "finetune_sgd"});
  for (const auto& n : weight_names) sgd.add_param(params, n);
  for (int s = 0; s < options_.finetune_steps; ++s) {
    sgd.set_lr(graph::cosine_lr(options_.finetune_lr, 0.0f, s, options_.finetune_steps));
    params.zero_grads();
    train.run(arena, params, {{net.x, task.support_x}, {net.labels, task.support_y}});
    float loss = train.output(arena, net.loss).f32()[0];
    if (!std::isfinite(loss)) fail("adaptation: fine-tuning step {} produced a non-finite loss ({})", s, loss);
    graph::clip_grad_norm(params, weight_names, 5.0);
    sgd.step(params);
  }
  if (chunked) {
    Tensor logits(logits_.data(), Shape{nq, space_.classes});
    eval_chunked->run(arena, params, task.query_x, logits);
    return accuracy(logits, task.query_y);
  }
  eval.run(arena, params, {{eval_net.x, task.query_x}});
  return accuracy(eval.output(arena, eval_net.logits), task.query_y);
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
