// Two-fold meta-learning: the weighted averages of both folds, the meta cell's fold
// and unfold, a meta step against Reptile computed by hand, and resume.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "nas/fewshot.h"
#include "nas/fold.h"
#include "nas/meta_cell.h"
#include "nas/meta_train.h"
#include "nas/network.h"
#include "runtime/rng.h"
#include "runtime/serialize/safetensors.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

// Two cells, the second a reduction (wider, with a factorized-reduce skip).
// A copy of the weights and alpha/beta of `p` (a FewShotAdapter keeps the start it is given).
ParamStore weights_copy(const ParamStore& p) {
  ParamStore c;
  for (const auto& en : p.entries()) {
    if (en->kind != ParamKind::weight && en->kind != ParamKind::arch) continue;
    Tensor t = c.add_weight(en->name, en->tensor.shape(), en->kind);
    std::memcpy(t.data(), en->tensor.data(), t.bytes());
  }
  return c;
}

SearchSpace tiny_space() {
  SearchSpace s;
  s.channels = 4;
  s.cells = 3;
  s.reductions = {1};
  s.nodes = 2;
  s.height = s.width = 8;
  s.classes = 3;
  return s;
}

// Task `index`: 3 classes, class c has a bright square in quadrant c, noise seeded
// by the index.
TaskSource synthetic_tasks(uint64_t seed) {
  return [seed](uint64_t index, const Task& t) {
    Rng rng(task_seed(seed, index));
    for (auto [x, y] : {std::pair{t.support_x, t.support_y}, std::pair{t.query_x, t.query_y}}) {
      const int64_t n = x.shape()[0], hw = x.shape()[2];
      for (int64_t i = 0; i < n; ++i) {
        int32_t c = int32_t(i % 3);
        y.i32()[i] = c;
        float* img = x.f32() + i * hw * hw;
        for (int64_t p = 0; p < hw * hw; ++p) img[p] = 0.8f * rng.normal();
        int64_t oy = c == 1 ? hw / 2 : 0, ox = c == 2 ? hw / 2 : 0;
        for (int64_t r = 0; r < hw / 2; ++r)
          for (int64_t q = 0; q < hw / 2; ++q) img[(oy + r) * hw + ox + q] += 1.0f;
      }
    }
  };
}

// A task of `ns` support and `nq` query images (1x8x8, tiny_space's), in buffers it owns.
struct TaskStore {
  TaskStore(int64_t ns, int64_t nq)
      : sx(size_t(ns) * 64 * 4), sy(size_t(ns) * 4), qx(size_t(nq) * 64 * 4), qy(size_t(nq) * 4),
        task{Tensor(sx.data(), Shape{ns, 1, 8, 8}), Tensor(sy.data(), Shape{ns}, DType::i32),
             Tensor(qx.data(), Shape{nq, 1, 8, 8}), Tensor(qy.data(), Shape{nq}, DType::i32)} {}
  Buffer sx, sy, qx, qy;
  Task task;
};

MetaOptions tiny_options() {
  MetaOptions o;
  o.episode = {.n_way = 3, .k_shot = 2, .q_query = 2};
  o.meta_batch = 2;
  o.inner_steps = 2;
  return o;
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.f32(), t.f32() + t.numel()); }
bool all_zero(const Tensor& t) { return values(t) == std::vector<float>(size_t(t.numel()), 0.0f); }

// Checks that each weight and alpha/beta of `ml` moved from `before` by Reptile's update
// over the two tasks' adapted parameters (the plain mean or the softmax coefficients of
// their differences, times the learning rate of its kind); the classifier is left out
// with a zero head (the caller checks it). Returns the number of elements checked.
int check_reptile_update(const MetaLearner& ml, const std::map<std::string, std::vector<float>>& before,
                         const std::vector<ParamStore>& adapted) {
  const MetaOptions& o = ml.options();
  const bool softmax = o.task_weighting == FoldWeighting::softmax;
  int checked = 0;
  for (const auto& e : ml.params().entries()) {
    if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
    if (o.head == HeadInit::zero && is_head_param(e->name)) continue;
    const float lr = e->kind == ParamKind::arch ? o.lr_arch : o.lr_weights;
    const std::vector<float>& m = before.at(e->name);
    const float* a = adapted[0].get(e->name).f32();
    const float* b = adapted[1].get(e->name).f32();
    for (size_t i = 0; i < m.size(); ++i) {
      const double da = double(a[i]) - m[i], db = double(b[i]) - m[i];
      double avg = (da + db) / 2;
      if (softmax) avg = (std::exp(da) * da + std::exp(db) * db) / (std::exp(da) + std::exp(db));
      INFO(e->name);
      REQUIRE(e->tensor.f32()[i] == Approx(m[i] + lr * avg).margin(1e-6));
      ++checked;
    }
  }
  return checked;
}

}  // namespace

TEST_CASE("fold average: softmax coefficients and the plain mean, online and merged") {
  FoldAverage soft(2, FoldWeighting::softmax), mean(2, FoldWeighting::mean);
  const float d[3][2] = {{1.0f, -4.0f}, {2.0f, 0.5f}, {3.0f, 0.25f}};
  for (const auto& row : d) {
    soft.add(0, std::span<const float>(row, 2));
    mean.add(0, std::span<const float>(row, 2));
  }
  for (int i = 0; i < 2; ++i) {
    double z = 0, w = 0;
    for (const auto& row : d) {
      z += std::exp(double(row[i]));
      w += std::exp(double(row[i])) * double(row[i]);
    }
    CHECK(soft.average(size_t(i)) == Approx(w / z).epsilon(1e-6));
    CHECK(mean.average(size_t(i)) == Approx((d[0][i] + d[1][i] + d[2][i]) / 3.0).epsilon(1e-6));
  }
  // Split over two accumulators (two processes), merged: the same average.
  FoldAverage a(2, FoldWeighting::softmax), b(2, FoldWeighting::softmax);
  a.add(0, std::span<const float>(d[2], 2));
  b.add(0, std::span<const float>(d[0], 2));
  b.add(0, std::span<const float>(d[1], 2));
  a.merge(b);
  CHECK(a.average(0) == Approx(soft.average(0)).epsilon(1e-6));
  CHECK(a.average(1) == Approx(soft.average(1)).epsilon(1e-6));
  // Large differences do not overflow.
  FoldAverage big(1, FoldWeighting::softmax);
  big.add(size_t(0), 500.0f);
  big.add(size_t(0), 400.0f);
  CHECK(big.average(0) == Approx(500.0).epsilon(1e-6));
  // Nothing added: 0.
  FoldAverage none(1, FoldWeighting::softmax);
  CHECK(none.average(0) == 0.0f);
}

TEST_CASE("leading slices copy the right elements of a wider tensor") {
  const Shape big{3, 4, 2}, small{2, 3, 2};
  std::vector<float> meta(size_t(big.numel()));
  for (size_t i = 0; i < meta.size(); ++i) meta[i] = float(i);
  std::vector<float> cell(size_t(small.numel()));
  copy_leading_slice(meta.data(), big, cell.data(), small);
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 2; ++c) CHECK(cell[size_t((a * 3 + b) * 2 + c)] == meta[size_t((a * 4 + b) * 2 + c)]);
  for (float& v : cell) v = -v;
  write_leading_slice(meta.data(), big, cell.data(), small);
  CHECK(meta[size_t((1 * 4 + 2) * 2 + 1)] == -float((1 * 4 + 2) * 2 + 1));
  CHECK(meta[size_t((1 * 4 + 3) * 2 + 1)] == float((1 * 4 + 3) * 2 + 1));  // outside the slice: untouched
}

TEST_CASE("meta cell: the union of the cells at the widest shapes, unfold gives each cell its slice") {
  SearchSpace s = tiny_space();
  ParamStore params;
  init_search_params(params, s, 7);
  MetaCell mc = MetaCell::from_cells(s, params);
  // pre1: cell 0 [4, 12] (stem 3 x 4), cell 1 [8, 8] (cell 0's 2 nodes x 4), cell 2
  // [8, 16] (cell 1's 2 nodes x 8): the meta cell holds [8, 16].
  const MetaCell::Entry* pre1 = mc.find("pre1.conv.weight");
  REQUIRE(pre1);
  CHECK(pre1->shape == Shape{8, 16, 1, 1});
  CHECK(pre1->cells == std::vector<int>{0, 1, 2});
  // Only the reduction cell has a factorized-reduce skip on its input edges.
  const MetaCell::Entry* skip = mc.find("nodes.0.edges.0.skip_connect.conv1.weight");
  REQUIRE(skip);
  CHECK(skip->cells == std::vector<int>{1});
  // Storage: the meta cell is smaller than the cells it stands for.
  CHECK(mc.bytes() < MetaCell::cells_bytes(s, params));

  mc.unfold(params);
  for (const MetaCell::Entry& e : mc.entries())
    for (int cell : e.cells) {
      Tensor t = params.get(fmt::format("cells.{}.{}", cell, e.suffix));
      std::vector<float> expect(size_t(t.numel()));
      copy_leading_slice(static_cast<const float*>(e.data.data()), e.shape, expect.data(), t.shape());
      CHECK(values(t) == expect);
    }
  // Cell 0's slice of pre1 is exactly the top-left [4, 12] block of the meta cell.
  Tensor c0 = params.get("cells.0.pre1.conv.weight");
  REQUIRE(c0.shape() == Shape{4, 12, 1, 1});
  CHECK(c0.f32()[1 * 12 + 5] == static_cast<const float*>(pre1->data.data())[1 * 16 + 5]);
}

TEST_CASE("cell fold: the meta cell moves by the weighted average of the covering cells' differences") {
  SearchSpace s = tiny_space();
  ParamStore params;
  init_search_params(params, s, 3);
  MetaCell mc = MetaCell::from_cells(s, params);
  mc.unfold(params);
  const MetaCell::Entry& pre1 = *mc.find("pre1.conv.weight");
  const std::vector<float> before(static_cast<const float*>(pre1.data.data()),
                                  static_cast<const float*>(pre1.data.data()) + pre1.shape.numel());
  // Cell i moves every weight of pre1 by (i + 1) * 0.1.
  for (int cell = 0; cell < 3; ++cell) {
    Tensor t = params.get(fmt::format("cells.{}.pre1.conv.weight", cell));
    for (int64_t k = 0; k < t.numel(); ++k) t.f32()[k] += 0.1f * float(cell + 1);
  }
  SECTION("plain mean, half a step") {
    mc.fold(params, {.weighting = FoldWeighting::mean, .multiplier = 1.0f, .lr = 0.5f});
    const float* m = static_cast<const float*>(pre1.data.data());
    // (1, 3): all three cells cover it; (5, 3): cells 1 and 2 (8 out channels);
    // (5, 14): cell 2 alone (16 in channels, cell 1 has 8).
    CHECK(m[1 * 16 + 3] == Approx(before[1 * 16 + 3] + 0.5 * 0.2).epsilon(1e-5));
    CHECK(m[5 * 16 + 3] == Approx(before[5 * 16 + 3] + 0.5 * 0.25).epsilon(1e-5));
    CHECK(m[5 * 16 + 14] == Approx(before[5 * 16 + 14] + 0.5 * 0.3).epsilon(1e-5));
  }
  SECTION("softmax coefficients across cells") {
    mc.fold(params, {.weighting = FoldWeighting::softmax, .multiplier = 1.0f, .lr = 1.0f});
    const float* m = static_cast<const float*>(pre1.data.data());
    const double e1 = std::exp(0.1), e2 = std::exp(0.2), e3 = std::exp(0.3);
    CHECK(m[0] == Approx(before[0] + (0.1 * e1 + 0.2 * e2 + 0.3 * e3) / (e1 + e2 + e3)).epsilon(1e-5));
    mc.unfold(params);
    // After unfolding, every cell holds the meta cell's values again.
    CHECK(params.get("cells.0.pre1.conv.weight").f32()[0] == m[0]);
    CHECK(params.get("cells.2.pre1.conv.weight").f32()[0] == m[0]);
  }
}

TEST_CASE("a meta step is Reptile's update: the weighted average of the tasks' adapted parameters") {
  SearchSpace s = tiny_space();
  MetaOptions o = tiny_options();
  o.cell_fold = false;  // compare the task fold alone
  o.lr_weights = 0.5f;
  o.lr_arch = 0.25f;
  const bool softmax = GENERATE(false, true);
  o.task_weighting = softmax ? FoldWeighting::softmax : FoldWeighting::mean;
  // Zero head: every task starts from a zero classifier (the hand-made searchers below
  // copy it from the meta parameters) and the meta classifier stays zero.
  o.head = GENERATE(HeadInit::meta, HeadInit::zero);
  TaskSource tasks = synthetic_tasks(11);
  MetaLearner ml(s, o, 5);
  CHECK(all_zero(ml.params().get("classifier.weight")) == (o.head == HeadInit::zero));

  // The same adaptation by hand: a fresh searcher per task from the meta parameters.
  std::vector<ParamStore> adapted(2);
  for (uint64_t t = 0; t < 2; ++t) {
    ParamStore& p = adapted[t];
    for (const auto& e : ml.params().entries())
      if (e->kind == ParamKind::weight || e->kind == ParamKind::arch) {
        Tensor w = p.add_weight(e->name, e->tensor.shape(), e->kind);
        std::memcpy(w.data(), e->tensor.data(), w.bytes());
      }
    SearchOptions so = o.inner;
    so.batch = 6;
    Searcher searcher(s, so, p, task_seed(5, t));
    TaskStore store(6, 6);
    const Task& task = store.task;
    tasks(t, task);
    for (int step = 0; step < o.inner_steps; ++step) {
      searcher.set_progress(step, o.inner_steps);
      searcher.step(task.support_x, task.support_y, task.support_x, task.support_y);
    }
  }
  std::map<std::string, std::vector<float>> before;
  for (const auto& e : ml.params().entries()) before[e->name] = values(e->tensor);

  ml.step(0, tasks);
  for (const auto& e : ml.params().entries()) {
    if (e->kind != ParamKind::weight || o.head != HeadInit::zero || !is_head_param(e->name)) continue;
    INFO(e->name);
    CHECK(all_zero(e->tensor));
    // The tasks did learn a classifier; the meta step dropped it.
    CHECK(values(adapted[0].get(e->name)) != values(e->tensor));
  }
  CHECK(check_reptile_update(ml, before, adapted) > 1000);
  // Something moved: the tasks adapted.
  CHECK(ml.params().get("alpha.normal").f32()[0] != before["alpha.normal"][0]);
}

TEST_CASE("inner minibatches: every support row once per pass, reshuffled, a function of the seed") {
  // Fills rows (steps x batch) from a pool of order.size() rows.
  auto draw = [](int64_t pool, int64_t batch, int steps, uint64_t seed) {
    std::vector<int64_t> order(static_cast<size_t>(pool)), rows(size_t(steps) * size_t(batch));
    minibatch_rows(order, rows, batch, seed);
    return rows;
  };
  const std::vector<int64_t> rows = draw(10, 4, 5, 7);
  REQUIRE(rows.size() == 20);
  for (size_t pass = 0; pass < 2; ++pass) {
    std::vector<int64_t> seen(rows.begin() + long(pass * 10), rows.begin() + long(pass * 10 + 10));
    std::sort(seen.begin(), seen.end());
    for (int64_t i = 0; i < 10; ++i) CHECK(seen[size_t(i)] == i);
  }
  CHECK(std::vector<int64_t>(rows.begin(), rows.begin() + 10) != std::vector<int64_t>(rows.begin() + 10, rows.end()));
  CHECK(draw(10, 4, 5, 7) == rows);
  CHECK(draw(10, 4, 5, 8) != rows);
  CHECK_THROWS_WITH(draw(6, 7, 1, 1), Catch::Contains("minibatches of 7 images from a support set of 6"));
}

TEST_CASE("a meta step with inner minibatches is Reptile's update over those minibatches") {
  SearchSpace s = tiny_space();
  MetaOptions o = tiny_options();  // 3-way 2-shot: a support set of 6
  o.cell_fold = false;
  o.task_weighting = FoldWeighting::mean;
  o.head = HeadInit::meta;
  o.inner_batch = 4;
  o.inner_steps = 3;  // 12 rows: two passes over the support set
  TaskSource tasks = synthetic_tasks(11);
  MetaLearner ml(s, o, 5);
  std::vector<ParamStore> adapted(2);
  for (uint64_t t = 0; t < 2; ++t) {
    ParamStore& p = adapted[t];
    p = weights_copy(ml.params());
    SearchOptions so = o.inner;
    so.batch = 4;
    Searcher searcher(s, so, p, task_seed(5, t));
    TaskStore store(6, 6), batch(4, 1);
    tasks(t, store.task);
    std::vector<int64_t> order(6), rows(size_t(o.inner_steps) * 4);
    minibatch_rows(order, rows, 4, Rng(task_seed(5, t)).fork(1).next_u64());
    for (int step = 0; step < o.inner_steps; ++step) {
      for (int r = 0; r < 4; ++r) {
        const int64_t row = rows[size_t(step * 4 + r)];
        std::memcpy(batch.task.support_x.f32() + r * 64, store.task.support_x.f32() + row * 64, 64 * sizeof(float));
        batch.task.support_y.i32()[r] = store.task.support_y.i32()[row];
      }
      searcher.set_progress(step, o.inner_steps);
      searcher.step(batch.task.support_x, batch.task.support_y, batch.task.support_x, batch.task.support_y);
    }
  }
  std::map<std::string, std::vector<float>> before;
  for (const auto& e : ml.params().entries()) before[e->name] = values(e->tensor);
  ml.step(0, tasks);
  CHECK(check_reptile_update(ml, before, adapted) > 1000);
  CHECK(ml.params().get("classifier.weight").f32()[0] != before["classifier.weight"][0]);
  // A minibatch larger than the support set is refused.
  o.inner_batch = 7;
  CHECK_THROWS_WITH(MetaLearner(s, o, 5), Catch::Contains("inner minibatch of 7 images from a support set of 6"));
}

TEST_CASE("warm-up meta steps leave alpha and beta alone, the cell fold keeps every cell on the meta cell") {
  SearchSpace s = tiny_space();
  MetaOptions o = tiny_options();
  o.warmup_steps = 1;
  MetaLearner ml(s, o, 9);
  TaskSource tasks = synthetic_tasks(1);
  const std::vector<float> alpha = values(ml.params().get("alpha.normal"));
  const std::vector<float> stem = values(ml.params().get("stem.conv.weight"));
  ml.step(0, tasks);
  CHECK(values(ml.params().get("alpha.normal")) == alpha);
  CHECK(values(ml.params().get("stem.conv.weight")) != stem);
  ml.step(1, tasks);
  CHECK(values(ml.params().get("alpha.normal")) != alpha);
  // Cells 0 (C = 4) and 2 (C = 8) share weights through the meta cell: cell 0's
  // pointwise conv is the leading [4, 4] block of cell 2's [8, 8].
  Tensor narrow = ml.params().get("cells.0.nodes.1.edges.2.conv_3x3.pw.weight");
  Tensor wide = ml.params().get("cells.2.nodes.1.edges.2.conv_3x3.pw.weight");
  REQUIRE(wide.shape() == Shape{8, 8, 1, 1});
  std::vector<float> slice(16);
  copy_leading_slice(wide.f32(), wide.shape(), slice.data(), narrow.shape());
  CHECK(values(narrow) == slice);
}

TEST_CASE("meta cell files round-trip, and resuming from one equals the uninterrupted run") {
  SearchSpace s = tiny_space();
  MetaOptions o = tiny_options();
  TaskSource tasks = synthetic_tasks(4);
  const std::string dir = (std::filesystem::temp_directory_path() / "onnas_test_meta").string();
  std::filesystem::create_directories(dir);

  MetaLearner straight(s, o, 21);
  for (int64_t step = 0; step < 3; ++step) straight.step(step, tasks);

  MetaLearner first(s, o, 21);
  for (int64_t step = 0; step < 2; ++step) first.step(step, tasks);
  first.save(dir + "/ckpt.safetensors", {{"meta_step", "2"}});
  MetaLearner resumed(s, o, 21);
  auto md = resumed.load(dir + "/ckpt.safetensors");
  CHECK(md.at("meta_step") == "2");
  CHECK(md.at("format") == kMetaCellFormat);
  resumed.step(2, tasks);
  for (const auto& e : straight.params().entries()) {
    if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
    INFO(e->name);
    REQUIRE(values(e->tensor) == values(resumed.params().get(e->name)));
  }

  // The file holds no per-cell tensors, and loads into a fresh store with cells unfolded.
  SafetensorsFile f = read_safetensors(dir + "/ckpt.safetensors");
  for (const auto& t : f.tensors) CHECK(t.name.rfind("cells.", 0) != 0);
  ParamStore fresh;
  MetaCellFile mf = load_meta_cell(dir + "/ckpt.safetensors", fresh);
  CHECK(mf.space == s);
  CHECK(values(fresh.get("cells.2.pre1.conv.weight")) == values(first.params().get("cells.2.pre1.conv.weight")));
  CHECK(std::stoull(mf.metadata.at("cells_bytes")) > std::stoull(mf.metadata.at("meta_cell_bytes")));

  // A meta cell for another space is refused, naming the file.
  SearchSpace other = s;
  other.channels = 6;
  MetaLearner wrong(other, o, 1);
  CHECK_THROWS_WITH(wrong.load(dir + "/ckpt.safetensors"), Catch::Contains("ckpt.safetensors"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("temperature schedule: the start through the warm-up, geometric to the end, then the end") {
  const TemperatureSchedule t{.start = 1.0f, .end = 0.1f, .steps = 4};
  CHECK(t.at(0, 2) == 1.0f);
  CHECK(t.at(2, 2) == 1.0f);
  CHECK(t.at(3, 2) == Approx(std::pow(0.1, 0.25)));
  CHECK(t.at(4, 2) == Approx(std::pow(0.1, 0.5)));
  CHECK(t.at(6, 2) == Approx(0.1));
  CHECK(t.at(100, 2) == Approx(0.1));
  CHECK_FALSE(TemperatureSchedule{}.annealed());
  CHECK(TemperatureSchedule{.start = 1.0f, .end = 1.0f, .steps = 9}.at(5, 0) == 1.0f);
  MetaOptions o = tiny_options();
  o.temperature = {.start = 1.0f, .end = 0.0f, .steps = 1};
  CHECK_THROWS_WITH(MetaLearner(tiny_space(), o, 1), Catch::Contains("temperatures must be positive"));
}

TEST_CASE("annealing keeps alpha / T in the store: a temperature change rescales the logits, resume keeps it") {
  SearchSpace s = tiny_space();
  MetaOptions o = tiny_options();
  o.warmup_steps = 1;
  o.temperature = {.start = 1.0f, .end = 0.1f, .steps = 2};
  TaskSource tasks = synthetic_tasks(5);
  MetaLearner ml(s, o, 13);
  CHECK(ml.temperature() == 1.0f);
  ml.step(0, tasks);  // warm-up: T = 1, alpha untouched
  ml.step(1, tasks);  // the first step after it: still the start temperature
  CHECK(ml.temperature() == 1.0f);
  const std::vector<float> alpha = values(ml.params().get("alpha.normal"));
  const std::vector<float> beta = values(ml.params().get("beta.reduce.1"));
  ml.anneal_to(2);
  const float t1 = o.temperature.at(2, 1);
  REQUIRE(t1 < 1.0f);
  CHECK(ml.temperature() == t1);
  // softmax(alpha / T): the stored logits grew by 1 / T, so every edge's mixture is sharper.
  const std::vector<float> a1 = values(ml.params().get("alpha.normal")), b1 = values(ml.params().get("beta.reduce.1"));
  for (size_t i = 0; i < alpha.size(); ++i) CHECK(a1[i] == alpha[i] * (1.0f / t1));
  for (size_t i = 0; i < beta.size(); ++i) CHECK(b1[i] == beta[i] * (1.0f / t1));
  ml.anneal_to(2);  // the same step again: nothing moves
  CHECK(values(ml.params().get("alpha.normal")) == a1);

  // Resumed across temperature changes, the run is the uninterrupted one.
  const std::string dir = (std::filesystem::temp_directory_path() / "onnas_test_meta_temperature").string();
  std::filesystem::create_directories(dir);
  MetaLearner straight(s, o, 21);
  for (int64_t step = 0; step < 4; ++step) straight.step(step, tasks);
  CHECK(straight.temperature() == Approx(0.1f));
  MetaLearner first(s, o, 21);
  for (int64_t step = 0; step < 3; ++step) first.step(step, tasks);
  first.save(dir + "/ckpt.safetensors", {});
  MetaLearner resumed(s, o, 21);
  auto md = resumed.load(dir + "/ckpt.safetensors");
  CHECK(meta_cell_temperature(md, "ckpt") == first.temperature());
  CHECK(resumed.temperature() == first.temperature());
  CHECK(resumed.temperature() < 1.0f);
  resumed.step(3, tasks);
  for (const auto& e : straight.params().entries()) {
    if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
    INFO(e->name);
    REQUIRE(values(e->tensor) == values(resumed.params().get(e->name)));
  }
  std::filesystem::remove_all(dir);
  CHECK(meta_cell_temperature({}, "f") == 1.0f);
  CHECK(meta_cell_temperature({{"alpha_temperature", "0.25"}}, "f") == 0.25f);
  CHECK_THROWS_WITH(meta_cell_temperature({{"alpha_temperature", "-2"}}, "f.safetensors"),
                    Catch::Contains("f.safetensors") && Catch::Contains("alpha_temperature") && Catch::Contains("outside"));
  CHECK_THROWS_WITH(meta_cell_temperature({{"alpha_temperature", "0"}}, "f"), Catch::Contains("outside"));
  CHECK_THROWS_WITH(meta_cell_temperature({{"alpha_temperature", "0.5x"}}, "f"), Catch::Contains("'0.5x'"));
  CHECK_THROWS_WITH(meta_cell_temperature({{"alpha_temperature", "nan"}}, "f"), Catch::Contains("not a finite"));
}

TEST_CASE("meta-training on synthetic tasks raises the query accuracy after adaptation") {
  SearchSpace s = tiny_space();
  MetaOptions o = tiny_options();
  o.episode.q_query = 4;
  o.meta_batch = 3;
  TaskSource tasks = synthetic_tasks(8);
  MetaLearner ml(s, o, 2);
  auto validation = [&] {
    double acc = 0;
    for (uint64_t t = 0; t < 6; ++t) acc += ml.evaluate_task(1000 + t, tasks).query_accuracy;
    return acc / 6;
  };
  const double before = validation();
  for (int64_t step = 0; step < 12; ++step) ml.step(step, tasks);
  const double after = validation();
  INFO("query accuracy before " << before << ", after " << after);
  CHECK(after > before + 0.15);
}

TEST_CASE("adaptation: a zero classifier starts every task from ties, meta keeps the starting supernet's") {
  SearchSpace s = tiny_space();
  ParamStore start;
  init_search_params(start, s, 3);
  AdaptOptions o;
  o.episode = {.n_way = 3, .k_shot = 2, .q_query = 4};
  o.search_steps = 0;
  o.finetune_steps = 0;
  TaskStore store(6, 12);
  const Task& task = store.task;
  synthetic_tasks(5)(0, task);
  // Every logit is the same: the first class wins each query, a third of them (labels i % 3).
  o.head = HeadInit::zero;
  // The adapter keeps the start it is given; each gets its own copy here.
  auto copy = [&] { return weights_copy(start); };
  FewShotAdapter zero(s, o, copy());
  CHECK(zero.adapt(task, 1).accuracy == Approx(1.0 / 3.0));
  CHECK(all_zero(start.get("classifier.weight")) == false);  // the start is untouched
  o.head = HeadInit::meta;
  FewShotAdapter meta(s, o, copy());
  meta.adapt(task, 1);
  CHECK(values(meta.params().get("classifier.weight")) == values(start.get("classifier.weight")));

  CHECK(parse_head_init("zero") == HeadInit::zero);
  CHECK_THROWS_WITH(parse_head_init("prototype"), Catch::Contains("choose meta or zero"));
}

TEST_CASE("interleave_classes: class-major rows become shot-major, labels with them, in place") {
  for (auto [n, k] : {std::pair{5, 3}, std::pair{3, 4}, std::pair{4, 1}, std::pair{1, 3}, std::pair{6, 6}}) {
    INFO(n << "-way, " << k << " per class");
    const int64_t rows = n * k, image = 3;
    std::vector<float> x(static_cast<size_t>(rows * image));
    std::vector<int32_t> y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {  // class-major: row r is image r % k of class r / k
      y[size_t(r)] = int32_t(r / k);
      for (int64_t p = 0; p < image; ++p) x[size_t(r * image + p)] = float(r * 10 + p);
    }
    interleave_classes(Tensor(x.data(), Shape{rows, 1, 1, image}), Tensor(y.data(), Shape{rows}, DType::i32), n);
    if (k > 1 && n > 1) {  // once shot-major, it stays
      const std::vector<float> once = x;
      interleave_classes(Tensor(x.data(), Shape{rows, 1, 1, image}), Tensor(y.data(), Shape{rows}, DType::i32), n);
      REQUIRE(x == once);
    }
    for (int64_t shot = 0; shot < k; ++shot)
      for (int64_t c = 0; c < n; ++c) {
        const int64_t at = shot * n + c, from = c * k + shot;
        REQUIRE(y[size_t(at)] == c);
        for (int64_t p = 0; p < image; ++p) REQUIRE(x[size_t(at * image + p)] == float(from * 10 + p));
      }
  }
  std::vector<float> x(12);
  std::vector<int32_t> y(4);
  CHECK_THROWS_WITH(interleave_classes(Tensor(x.data(), Shape{4, 3}), Tensor(y.data(), Shape{4}, DType::i32), 3),
                    Catch::Contains("4 rows (4 labels) are not 3 classes of equal size"));
  y = {0, 0, 0, 1};
  CHECK_THROWS_WITH(interleave_classes(Tensor(x.data(), Shape{4, 3}), Tensor(y.data(), Shape{4}, DType::i32), 2),
                    Catch::Contains("not 2 classes of 2 images each"));
}

TEST_CASE("adaptation in micro-batches: each holds every class, so batch norm keeps the classes apart") {
  // Episodes as the sampler lays them out, class-major (class c at rows c*K ..).
  // Split 3 of 3-way 2-shot: micro-batches of 2 images. Taken in that order each would
  // hold one class, which its own batch norm normalizes away: the supernet stayed at
  // chance (1/3). Interleaved, each holds two classes.
  SearchSpace s = tiny_space();
  ParamStore start;
  init_search_params(start, s, 3);
  AdaptOptions o;
  o.episode = {.n_way = 3, .k_shot = 2, .q_query = 4};
  o.search_steps = 60;
  o.finetune_steps = 0;
  o.head = HeadInit::zero;
  o.search.w_lr = o.search.w_lr_min = 0.1f;
  o.search.w_optimizer = WeightOptimizer::sgd;
  o.search.step = {.mode = Mode::ops_pairs_sbs, .k_grad = 1, .split = 3};
  TaskStore store(6, 12);
  const Task& task = store.task;
  double sum = 0;
  for (uint64_t t = 0; t < 4; ++t) {
    synthetic_tasks(21)(t, task);
    // Class-major: sort rows by label (stable), as the episode sampler writes them.
    for (const Tensor* pair : {&task.support_x, &task.query_x}) {
      const Tensor& x = *pair;
      const Tensor& y = pair == &task.support_x ? task.support_y : task.query_y;
      const int64_t rows = x.shape()[0], image = x.numel() / rows;
      std::vector<float> xs(x.f32(), x.f32() + x.numel());
      std::vector<int32_t> ys(y.i32(), y.i32() + rows);
      int64_t at = 0;
      for (int32_t c = 0; c < 3; ++c)
        for (int64_t r = 0; r < rows; ++r)
          if (ys[size_t(r)] == c) {
            std::copy_n(xs.data() + r * image, image, x.f32() + at * image);
            y.i32()[at++] = c;
          }
    }
    FewShotAdapter ada(s, o, weights_copy(start));
    CHECK(ada.query_per_chunk_stats());  // automatic: the search splits the support set
    CHECK(ada.query_chunk() == 2);
    sum += ada.adapt(task, 3 + t).supernet_accuracy;
  }
  // Measured 2026-12-01: 0.56 interleaved, 0.31 in the class-major order (chance 1/3).
  CHECK(sum / 4 > 0.45);
}

TEST_CASE("adaptation: the query set in chunks gives the same accuracies, in one planned arena") {
  SearchSpace s = tiny_space();
  ParamStore start;
  init_search_params(start, s, 3);
  auto copy = [&] { return weights_copy(start); };
  AdaptOptions o;
  o.episode = {.n_way = 3, .k_shot = 2, .q_query = 4};
  o.search_steps = 3;
  o.finetune_steps = 3;
  o.search.step = {.mode = Mode::ops_pairs_sbs, .k_grad = 1, .split = 2};
  o.query_stats = AdaptOptions::QueryStats::query_set;  // chunks of the whole query set's statistics
  TaskStore store(6, 12);
  const Task& task = store.task;

  o.query_chunk = 0;
  FewShotAdapter whole(s, o, copy());
  CHECK(whole.query_chunk() == 12);
  for (int64_t chunk : {int64_t(1), int64_t(4), AdaptOptions::kFitQueryChunk}) {
    INFO("chunk " << chunk);
    o.query_chunk = chunk;
    FewShotAdapter chunked(s, o, copy());
    if (chunk > 0) CHECK(chunked.query_chunk() == chunk);
    CHECK(12 % chunked.query_chunk() == 0);
    if (chunk == 1) CHECK(chunked.query_arena_bytes() < whole.query_arena_bytes());
    // One arena for the task, reserved before the first for every need known then.
    CHECK(chunked.planned_arena_bytes() >= chunked.search_plan_bytes());
    CHECK(chunked.planned_arena_bytes() >= chunked.query_arena_bytes());
    CHECK(chunked.planned_arena_bytes() >= chunked.discrete_estimate_bytes());
    // Two tasks each: the second starts from what the first left in the shared arena.
    for (uint64_t t = 0; t < 2; ++t) {
      synthetic_tasks(11)(t, task);
      const AdaptResult a = whole.adapt(task, 5 + t), b = chunked.adapt(task, 5 + t);
      CHECK(a.genotype == b.genotype);
      CHECK(a.supernet_accuracy == b.supernet_accuracy);
      CHECK(a.accuracy == b.accuracy);
    }
    CHECK(chunked.discrete_arena_bytes() > 0);
  }
  o.query_chunk = 5;
  CHECK_THROWS_WITH(FewShotAdapter(s, o, copy()), Catch::Contains("a query chunk of 5 images does not divide the query set of 12"));
}
