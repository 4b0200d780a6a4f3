#include "nas/meta_train.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "nas/network.h"
#include "runtime/error.h"
#include "runtime/heap.h"
#include "runtime/rng.h"
#include "runtime/serialize/safetensors.h"

namespace onnas::nas {

uint64_t task_seed(uint64_t seed, uint64_t index) { return Rng(seed).fork(index + 1).next_u64(); }

void interleave_classes(const Tensor& x, const Tensor& y, int64_t n_way) {
  const int64_t rows = x.shape()[0];
  if (n_way < 1 || rows % n_way != 0 || y.numel() != rows)
    fail("interleave_classes: {} rows ({} labels) are not {} classes of equal size", rows, y.numel(), n_way);
  const int64_t per_class = rows / n_way, image = x.numel() / std::max<int64_t>(rows, 1);
  if (per_class == 1 || n_way == 1) return;
  // Where each row goes: the i-th image of class c to row i * N + c. Read from the labels,
  // so rows already shot-major stay where they are (a second call changes nothing).
  float* px = x.f32();
  int32_t* py = y.i32();
  std::vector<int64_t> to(static_cast<size_t>(rows)), seen(static_cast<size_t>(n_way), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t c = py[r];
    if (c < 0 || c >= n_way || seen[size_t(c)] == per_class)
      fail("interleave_classes: label {} of row {}: not {} classes of {} images each", c, r, n_way, per_class);
    to[size_t(r)] = seen[size_t(c)]++ * n_way + c;
  }
  // Each cycle of the permutation is applied once, from its smallest row, by swapping
  // rows through that row.
  for (int64_t start = 0; start < rows; ++start) {
    int64_t r = to[size_t(start)];
    while (r > start) r = to[size_t(r)];
    if (r < start) continue;  // the cycle was applied from a smaller row
    for (int64_t next = to[size_t(start)]; next != start; next = to[size_t(next)]) {
      std::swap_ranges(px + start * image, px + (start + 1) * image, px + next * image);
      std::swap(py[start], py[next]);
    }
  }
}

namespace {

// One inner step of a task on (x, y), both the weight and the architecture step; a
// non-finite loss throws, naming `what` and the step.
void inner_step(Searcher& searcher, const Tensor& x, const Tensor& y, int s, int steps, const std::string& what) {
  searcher.set_progress(s, steps);
  const StepResult r = searcher.step(x, y, x, y);
  if (!std::isfinite(r.weight_loss) || !std::isfinite(r.arch_loss))
    fail("{} step {} produced a non-finite loss (weight {}, arch {})", what, s, r.weight_loss, r.arch_loss);
}

}  // namespace

void search_on_support(Searcher& searcher, const Task& task, int steps, const std::string& what) {
  if (searcher.options().step.split > 1) {
    const int64_t n_way = searcher.space().classes;
    interleave_classes(task.support_x, task.support_y, n_way);
  }
  for (int s = 0; s < steps; ++s) inner_step(searcher, task.support_x, task.support_y, s, steps, what);
}

void minibatch_rows(std::span<int64_t> order, std::span<int64_t> rows, int64_t batch, uint64_t seed) {
  const int64_t pool = int64_t(order.size());
  if (pool < 1 || batch < 1 || batch > pool || rows.size() % size_t(batch) != 0)
    fail("minibatches of {} images from a support set of {} ({} rows asked for)", batch, pool, rows.size());
  Rng rng(seed);
  size_t next = order.size();  // the first pass shuffles first
  for (int64_t& row : rows) {
    if (next == order.size()) {
      for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
      for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[size_t(rng.uniform_int(int64_t(i) + 1))]);
      next = 0;
    }
    row = order[next++];
  }
}

void search_on_minibatches(Searcher& searcher, const Task& task, int steps, const Tensor& batch_x,
                           const Tensor& batch_y, std::span<int64_t> order, std::span<int64_t> rows, uint64_t seed,
                           const std::string& what) {
  const int64_t pool = task.support_x.shape()[0], batch = batch_x.shape()[0];
  const size_t image = size_t(task.support_x.numel() / std::max<int64_t>(pool, 1));
  if (batch_y.numel() != batch || size_t(batch_x.numel()) != size_t(batch) * image || order.size() != size_t(pool) ||
      rows.size() != size_t(steps) * size_t(batch))
    fail("{}: buffers of {} images, {} labels, {} and {} rows for {} steps of {} from {}", what, batch_x.shape()[0],
         batch_y.numel(), order.size(), rows.size(), steps, batch, pool);
  minibatch_rows(order, rows, batch, seed);
  const float* sx = task.support_x.f32();
  const int32_t* sy = task.support_y.i32();
  float* bx = batch_x.f32();
  int32_t* by = batch_y.i32();
  for (int s = 0; s < steps; ++s) {
    for (int64_t r = 0; r < batch; ++r) {
      const int64_t row = rows[size_t(s) * size_t(batch) + size_t(r)];
      std::memcpy(bx + size_t(r) * image, sx + size_t(row) * image, image * sizeof(float));
      by[r] = sy[row];
    }
    inner_step(searcher, batch_x, batch_y, s, steps, what);
  }
}

float TemperatureSchedule::at(int64_t step, int64_t warmup_steps) const {
  if (step <= warmup_steps) return start;
  if (steps <= 0) return end;
  const double t = std::min(1.0, double(step - warmup_steps) / double(steps));
  return float(double(start) * std::pow(double(end) / double(start), t));
}

float meta_cell_temperature(const std::map<std::string, std::string>& metadata, const std::string& source) {
  if (!metadata.count("alpha_temperature")) return 1.0f;
  return float(metadata_number(metadata, "alpha_temperature", source, 1e-6, 1e6));
}

SearchOptions MetaOptions::default_inner() {
  SearchOptions o;
  o.w_lr_min = o.w_lr;  // a handful of steps per task: no schedule
  return o;
}

MetaLearner::MetaLearner(SearchSpace space, MetaOptions options, uint64_t seed)
    : space_(std::move(space)), options_(std::move(options)), seed_(seed) {
  space_.validate();
  const data::EpisodeShape& e = options_.episode;
  if (e.n_way != space_.classes)
    fail("meta-learning: {}-way tasks need a classifier of {} classes (the space has {})", e.n_way, e.n_way,
         space_.classes);
  if (options_.meta_batch < 1 || options_.inner_steps < 1 || e.k_shot < 1 || e.q_query < 1)
    fail("meta-learning: meta batch, inner steps, shots and queries must be at least 1");
  const TemperatureSchedule& ts = options_.temperature;
  if (!(ts.start > 0) || !(ts.end > 0) || !std::isfinite(ts.start) || !std::isfinite(ts.end) || ts.steps < 0)
    fail("meta-learning: temperatures must be positive ({} to {}) over a non-negative number of steps ({})", ts.start,
         ts.end, ts.steps);
  if (options_.inner_batch < 0 || options_.inner_batch > e.n_way * e.k_shot)
    fail("meta-learning: an inner minibatch of {} images from a support set of {} ({}-way {}-shot)",
         options_.inner_batch, e.n_way * e.k_shot, e.n_way, e.k_shot);
  options_.inner.batch = options_.inner_batch > 0 ? options_.inner_batch : e.n_way * e.k_shot;

  init_search_params(meta_, space_, Rng(seed).fork(0).next_u64());
  cell_ = MetaCell::from_cells(space_, meta_);
  cell_.unfold(meta_);
  if (options_.head != HeadInit::meta) zero_head(meta_);
  size_t largest = 0;
  for (const auto& en : meta_.entries()) {
    if (en->kind != ParamKind::weight && en->kind != ParamKind::arch) continue;
    names_.push_back(en->name);
    offsets_.push_back(fold_size_);
    fold_size_ += size_t(en->tensor.numel());
    largest = std::max(largest, size_t(en->tensor.numel()));
  }
  // The task fold's sums and one tensor's differences, allocated once.
  fold_ = FoldAverage(fold_size_, options_.task_weighting);
  diff_.resize(largest);

  searcher_ = std::make_unique<Searcher>(space_, options_.inner, work_, seed);  // compiled once, here
  anneal_to(0);  // the logits as initialized are at T = 1

  const Shape image{space_.in_channels, space_.height, space_.width};
  const int64_t ns = e.n_way * e.k_shot, nq = e.n_way * e.q_query;
  sx_ = Buffer(size_t(ns * image.numel()) * 4);
  sy_ = Buffer(size_t(ns) * 4);
  qx_ = Buffer(size_t(nq * image.numel()) * 4);
  qy_ = Buffer(size_t(nq) * 4);
  task_ = {Tensor(sx_.data(), Shape{ns, image[0], image[1], image[2]}), Tensor(sy_.data(), Shape{ns}, DType::i32),
           Tensor(qx_.data(), Shape{nq, image[0], image[1], image[2]}), Tensor(qy_.data(), Shape{nq}, DType::i32)};
  if (options_.inner_batch > 0) {
    const int64_t nb = options_.inner_batch;
    bx_ = Buffer(size_t(nb * image.numel()) * 4);
    by_ = Buffer(size_t(nb) * 4);
    batch_x_ = Tensor(bx_.data(), Shape{nb, image[0], image[1], image[2]});
    batch_y_ = Tensor(by_.data(), Shape{nb}, DType::i32);
    order_.resize(size_t(ns));
    rows_.resize(size_t(options_.inner_steps) * size_t(nb));
  }

  // The query set is evaluated with the batch's statistics (search BN keeps none), in
  // the search step's arena (nothing in it outlives a step): one arena, the larger.
  graph::Graph g;
  query_net_ = emit_search_net(g, space_, nq);
  query_ = graph::compile(g, {.outputs = {query_net_.logits, query_net_.loss}});
  searcher_->reserve_arena(query_.arena_bytes());
  release_free_heap();  // the query graph and its compilation's transients are gone
}

size_t query_eval_arena_bytes(const SearchSpace& space, int64_t nq) {
  graph::Graph g;
  const SearchNet net = emit_search_net(g, space, nq);
  return graph::compile(g, {.outputs = {net.logits, net.loss}}).arena_bytes();
}

size_t MetaLearner::arena_bytes() const { return searcher_->arena_bytes(); }
size_t MetaLearner::table_bytes() const { return searcher_->compiled().table_bytes() + query_.table_bytes(); }

void MetaLearner::anneal_to(int64_t step) {
  const float t = options_.temperature.at(step, options_.warmup_steps);
  if (t != temperature_) {
    const float scale = temperature_ / t;
    for (const std::string& name : names_) {
      const ParamStore::Entry& e = meta_.entry(name);
      if (e.kind != ParamKind::arch) continue;
      float* p = e.tensor.f32();
      for (int64_t i = 0; i < e.tensor.numel(); ++i) p[i] *= scale;
    }
    temperature_ = t;
  }
  searcher_->set_arch_lr(options_.inner.a_lr / temperature_);
}

TaskResult MetaLearner::adapt(uint64_t index, const TaskSource& tasks, bool adapt_arch) {
  tasks(index, task_);
  for (const std::string& name : names_) {
    Tensor src = meta_.get(name);
    std::memcpy(work_.get(name).data(), src.data(), src.bytes());
  }
  searcher_->reset(task_seed(seed_, index));
  searcher_->set_arch_frozen(!adapt_arch);
  const std::string what = fmt::format("meta-learning: task {} inner", index);
  if (options_.inner_batch > 0)
    search_on_minibatches(*searcher_, task_, options_.inner_steps, batch_x_, batch_y_, order_, rows_,
                          Rng(task_seed(seed_, index)).fork(1).next_u64(), what);
  else
    search_on_support(*searcher_, task_, options_.inner_steps, what);
  Arena& arena = searcher_->arena();
  query_.run(arena, work_, {{query_net_.x, task_.query_x}, {query_net_.labels, task_.query_y}});
  TaskResult r;
  r.query_loss = query_.output(arena, query_net_.loss).f32()[0];
  r.query_accuracy = accuracy(query_.output(arena, query_net_.logits), task_.query_y);
  return r;
}

TaskResult MetaLearner::run_task(uint64_t index, const TaskSource& tasks, bool adapt_arch, FoldAverage& fold) {
  ONNAS_CHECK(fold.size() == fold_size_, "meta-learning: fold of {} elements, the supernet has {}", fold.size(),
              fold_size_);
  TaskResult r = adapt(index, tasks, adapt_arch);
  for (size_t k = 0; k < names_.size(); ++k) {
    Tensor meta = meta_.get(names_[k]), task = work_.get(names_[k]);
    const float* m = meta.f32();
    const float* t = task.f32();
    const std::span<float> d(diff_.data(), size_t(meta.numel()));  // diff_ holds the largest
    for (size_t i = 0; i < d.size(); ++i) d[i] = t[i] - m[i];
    fold.add(offsets_[k], d);
  }
  return r;
}

void MetaLearner::apply_fold(const FoldAverage& fold, bool update_arch) {
  for (size_t k = 0; k < names_.size(); ++k) {
    const ParamStore::Entry& e = meta_.entry(names_[k]);
    if (e.kind == ParamKind::arch && !update_arch) continue;
    if (options_.head != HeadInit::meta && is_head_param(names_[k])) continue;
    const float lr = (e.kind == ParamKind::arch ? options_.lr_arch : options_.lr_weights) * options_.task_multiplier;
    float* p = e.tensor.f32();
    const int64_t n = e.tensor.numel();
    for (int64_t i = 0; i < n; ++i) p[i] += lr * fold.average(offsets_[k] + size_t(i));
  }
  if (options_.cell_fold) {
    cell_.fold(meta_, options_.cell);
    cell_.unfold(meta_);
  }
}

FoldAverage& MetaLearner::fold() {
  fold_.reset();
  return fold_;
}

size_t MetaLearner::fold_bytes() const {
  return fold_.bytes() + diff_.capacity() * sizeof(float);
}

MetaStepResult MetaLearner::step(int64_t step, const TaskSource& tasks) {
  anneal_to(step);
  const bool arch = !in_warmup(step);
  FoldAverage& fold = this->fold();
  MetaStepResult out;
  for (int64_t b = 0; b < options_.meta_batch; ++b) {
    TaskResult r = run_task(uint64_t(step * options_.meta_batch + b), tasks, arch, fold);
    out.query_loss += r.query_loss / float(options_.meta_batch);
    out.query_accuracy += r.query_accuracy / float(options_.meta_batch);
  }
  apply_fold(fold, arch);
  return out;
}

TaskResult MetaLearner::evaluate_task(uint64_t index, const TaskSource& tasks) { return adapt(index, tasks, true); }

void MetaLearner::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  std::map<std::string, std::string> md = metadata;
  if (temperature_ != 1.0f) md["alpha_temperature"] = fmt::format("{}", temperature_);  // shortest exact form
  if (options_.cell_fold) {
    save_meta_cell(path, space_, meta_, cell_, md);
  } else {
    // The cells went their own ways; one meta cell holds each element from the last
    // cell covering it.
    md["cell_fold"] = "off";
    save_meta_cell(path, space_, meta_, MetaCell::from_cells(space_, meta_), md);
  }
}

std::map<std::string, std::string> MetaLearner::load(const std::string& path) {
  ParamStore loaded;
  MetaCellFile f = load_meta_cell(path, loaded);
  if (!(f.space == space_))
    fail("{}: meta cell of space {}, this run's space is {}", path, f.space.describe(), space_.describe());
  for (const std::string& name : names_) {
    Tensor src = loaded.get(name);
    std::memcpy(meta_.get(name).data(), src.data(), src.bytes());
  }
  cell_ = std::move(f.cell);
  if (options_.cell_fold) cell_.unfold(meta_);
  temperature_ = meta_cell_temperature(f.metadata, path);
  searcher_->set_arch_lr(options_.inner.a_lr / temperature_);
  return f.metadata;
}

}  // namespace onnas::nas
