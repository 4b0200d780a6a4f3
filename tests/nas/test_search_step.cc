// The memory modes of a search step (ONNAS.md sections 4-6) on a tiny supernet:
// step-by-step back-propagation is exact (both variants, with micro-batches against
// the same chunks), non-sampled ops and pairs get exactly zero gradient, and every
// program's plan (and the side storage's) passes the overlap checker.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "graph/compile.h"
#include "memory_planner/choices.h"
#include "nas/network.h"
#include "nas/sampler.h"
#include "nas/memory_budget.h"
#include "nas/search_step.h"
#include "runtime/rng.h"

#include "tests/nas/spaces.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

SearchSpace tiny_space() { return test_spaces::small_space(); }

struct Fixture {
  SearchSpace space = tiny_space();
  int64_t batch = 6;
  ParamStore params;
  Buffer x_mem, y_mem;
  Tensor x, y;

  Fixture() : x_mem(size_t(6 * 64) * 4), y_mem(6 * 4) {
    Graph g;
    emit_search_net(g, space, batch);
    Rng rng(17);
    init_params(params, g, rng);
    // Architecture weights away from uniform, so every softmax entry matters.
    for (const auto& e : params.entries())
      if (e->kind == ParamKind::arch) {
        Tensor t = e->tensor;
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.5f * rng.normal();
      }
    x = Tensor(x_mem.data(), Shape{batch, 1, 8, 8});
    y = Tensor(y_mem.data(), Shape{batch}, DType::i32);
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = rng.normal();
    for (int64_t i = 0; i < batch; ++i) y.i32()[i] = int32_t(rng.uniform_int(3));
  }

  // Runs one pass; returns every gradient of `kind` by name.
  std::map<std::string, std::vector<float>> gradients(const StepConfig& config, const Sample& sample, ParamKind kind,
                                                      PassResult* result = nullptr) {
    StepGates gates(space, config);
    GradientPass pass(space, config, batch, gates, kind, params);
    const graph::Schedule& s = pass.schedule();
    planner::check_choice_plan(s.buffers(), s.choices(), s.plan());
    graph::GateValues values;
    if (gates.space()) values = graph::GateValues(*gates.space());
    gates.apply(sample, values);
    Arena arena(std::max<size_t>(pass.arena_bytes(), kAlignment));
    params.zero_grads();
    PassResult r = pass.run(arena, params, x, y, gates.space() ? &values : nullptr);
    if (result) *result = r;
    std::map<std::string, std::vector<float>> out;
    for (const auto& e : params.entries()) {
      if (e->kind != kind) continue;
      Tensor gr = params.grad(e->name);
      out[e->name].assign(gr.f32(), gr.f32() + gr.numel());
    }
    return out;
  }
};

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-12);
}

bool all_zero(const std::vector<float>& v) {
  for (float f : v)
    if (f != 0.0f) return false;
  return true;
}

void check_same(const std::map<std::string, std::vector<float>>& got,
                const std::map<std::string, std::vector<float>>& want) {
  REQUIRE(got.size() == want.size());
  int nonzero = 0;
  for (const auto& [name, w] : want) {
    INFO(name);
    const auto& g = got.at(name);
    if (all_zero(w)) {
      CHECK(all_zero(g));
      continue;
    }
    nonzero++;
    CHECK(relative_error(g, w) < 1e-4);
  }
  CHECK(nonzero > 0);
}

Sample sampled(const SearchSpace& space, const ParamStore& params, uint64_t seed) {
  ArchSampler sampler(space, {.k_grad = 2, .explore_prob = 0.2}, seed);
  return sampler.draw(params, 0, 10);
}

}  // namespace

TEST_CASE("step-by-step back-propagation equals the one-shot backward, weights and alpha/beta") {
  Fixture f;
  const auto variant = GENERATE(SbsVariant::recompute, SbsVariant::checkpoint);
  const bool full = GENERATE(true, false);
  const int split = GENERATE(1, 3);
  INFO(sbs_variant_name(variant) << (full ? ", every op" : ", sampled ops") << ", split " << split);
  Sample sample = sampled(f.space, f.params, 5);
  const int k_grad = full ? f.space.num_ops() : 2;
  if (full)
    for (CellSample* c : {&sample.normal, &sample.reduce})
      for (auto& edge : c->grad_ops) std::fill(edge.begin(), edge.end(), 1);
  for (ParamKind kind : {ParamKind::weight, ParamKind::arch}) {
    INFO((kind == ParamKind::weight ? "weights" : "alpha/beta"));
    PassResult one_r, sbs_r;
    const auto one_shot =
        f.gradients({.mode = Mode::ops_pairs, .k_grad = k_grad, .split = split}, sample, kind, &one_r);
    const auto sbs = f.gradients({.mode = Mode::ops_pairs_sbs, .sbs = variant, .k_grad = k_grad, .split = split},
                                 sample, kind, &sbs_r);
    check_same(sbs, one_shot);
    CHECK(sbs_r.loss == Approx(one_r.loss).epsilon(1e-5));
    CHECK(sbs_r.correct == one_r.correct);
  }
}

TEST_CASE("dropping the s0 hand-on (as the paper's code does) makes step-by-step differ from one-shot") {
  Fixture f;
  const auto variant = GENERATE(SbsVariant::recompute, SbsVariant::checkpoint);
  INFO(sbs_variant_name(variant));
  const Sample sample = sampled(f.space, f.params, 5);
  const auto one_shot = f.gradients({.mode = Mode::ops_pairs, .k_grad = 2}, sample, ParamKind::weight);
  const auto dropped = f.gradients(
      {.mode = Mode::ops_pairs_sbs, .sbs = variant, .k_grad = 2, .test_drop_s0_hand_on = true}, sample,
      ParamKind::weight);
  // Cells before the last lose part of their gradient: some tensor is far off.
  double worst = 0;
  for (const auto& [name, w] : one_shot)
    if (!all_zero(w)) worst = std::max(worst, relative_error(dropped.at(name), w));
  CHECK(worst > 1e-2);
}

TEST_CASE("micro-batches: the split gradient is the mean of the chunks' gradients") {
  Fixture f;
  const Sample sample = full_sample(f.space);
  // Split 2 over a batch of 6 against two passes of batch 3 run by hand.
  const auto split = f.gradients({.mode = Mode::full, .split = 2}, sample, ParamKind::weight);
  std::map<std::string, std::vector<float>> want;
  Fixture half;  // same seed: same parameters
  half.batch = 3;
  for (int c = 0; c < 2; ++c) {
    half.x = Tensor(f.x.f32() + c * 3 * 64, Shape{3, 1, 8, 8});
    half.y = Tensor(f.y.i32() + c * 3, Shape{3}, DType::i32);
    auto g = half.gradients({.mode = Mode::full}, sample, ParamKind::weight);
    for (auto& [name, v] : g) {
      auto& w = want[name];
      w.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) w[i] += 0.5f * v[i];
    }
  }
  check_same(split, want);
}

TEST_CASE("non-sampled ops and pairs get exactly zero gradient, the head matches the full backward") {
  Fixture f;
  const Sample sample = sampled(f.space, f.params, 9);
  const auto full_w = f.gradients({.mode = Mode::full}, full_sample(f.space), ParamKind::weight);
  const auto w = f.gradients({.mode = Mode::ops_pairs}, sample, ParamKind::weight);
  const auto a = f.gradients({.mode = Mode::ops_pairs}, sample, ParamKind::arch);
  const int64_t k = f.space.num_ops();
  int zero_ops = 0, grad_ops = 0;
  for (int cell = 0; cell < f.space.cells; ++cell) {
    const bool red = f.space.is_reduction(cell);
    const CellSample& cs = sample.of(red);
    for (int j = 0; j < f.space.nodes; ++j) {
      const auto pairs = f.space.pairs(j);
      const int gp = cs.grad_pair[size_t(j)];
      for (int in = 0; in < 2 + j; ++in) {
        const int e = f.space.first_edge(j) + in;
        const bool in_pair = gp < 0 || pairs[size_t(gp)].first == in || pairs[size_t(gp)].second == in;
        for (int64_t o = 0; o < k; ++o) {
          const std::string prefix =
              fmt::format("cells.{}.nodes.{}.edges.{}.{}.", cell, j, e, op_kind_name(f.space.ops[size_t(o)]));
          const bool grad = in_pair && cs.grad_ops[size_t(e)][size_t(o)];
          for (const auto& [name, v] : w) {
            if (name.rfind(prefix, 0) != 0) continue;
            INFO(name);
            if (grad) {
              grad_ops++;
            } else {
              zero_ops++;
              CHECK(all_zero(v));
            }
          }
          const float da = a.at(red ? "alpha.reduce" : "alpha.normal")[size_t(e * k + o)];
          if (!grad) CHECK(da == 0.0f);
        }
      }
      const auto& db = a.at(fmt::format("beta.{}.{}", red ? "reduce" : "normal", j));
      for (size_t p = 0; p < pairs.size(); ++p)
        if (gp >= 0 && int(p) != gp) CHECK(db[p] == 0.0f);
      if (gp >= 0) CHECK(db[size_t(gp)] != 0.0f);
    }
  }
  CHECK(zero_ops > 0);
  CHECK(grad_ops > 0);
  // The head sees the same forward values, so its gradients are the full backward's.
  CHECK(relative_error(w.at("classifier.weight"), full_w.at("classifier.weight")) < 1e-4);
  CHECK(relative_error(w.at("classifier.bias"), full_w.at("classifier.bias")) < 1e-4);
}

TEST_CASE("with every op a gradient op, the sampled step is the full step") {
  Fixture f;
  const Sample all = full_sample(f.space);
  const int k = f.space.num_ops();
  for (ParamKind kind : {ParamKind::weight, ParamKind::arch})
    check_same(f.gradients({.mode = Mode::ops, .k_grad = k}, all, kind), f.gradients({.mode = Mode::full}, all, kind));
}

TEST_CASE("memory: SBS and sampling shrink the arena, planned for every sample, handed values included") {
  Fixture f;
  const StepConfig full_c{.mode = Mode::full}, ops_c{.mode = Mode::ops_pairs},
      rec_c{.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::recompute},
      ckpt_c{.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::checkpoint},
      rec3_c{.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::recompute, .split = 3};
  StepGates gf(f.space, full_c), go(f.space, ops_c), gr(f.space, rec_c), gk(f.space, ckpt_c), g3(f.space, rec3_c);
  GradientPass full(f.space, full_c, 6, gf, ParamKind::weight, f.params);
  GradientPass ops(f.space, ops_c, 6, go, ParamKind::weight, f.params);
  GradientPass rec(f.space, rec_c, 6, gr, ParamKind::weight, f.params);
  GradientPass ckpt(f.space, ckpt_c, 6, gk, ParamKind::weight, f.params);
  GradientPass rec3(f.space, rec3_c, 6, g3, ParamKind::weight, f.params);
  CHECK(ops.arena_bytes() < full.arena_bytes());
  CHECK(rec.arena_bytes() < ops.arena_bytes());
  CHECK(rec3.arena_bytes() < rec.arena_bytes());
  CHECK(full.handed_bytes() == 0);
  CHECK(rec.handed_bytes() > 0);
  CHECK(ckpt.handed_bytes() > 0);
  CHECK(full.cell_forwards() == 3);
  CHECK(ckpt.cell_forwards() == 5);
  CHECK(rec.cell_forwards() == 6);
  // One program per phase (3 cells + stem), each after its recompute forward.
  CHECK(rec.programs().size() == 3 + 3 + 1);
  CHECK(ckpt.programs().size() == 1 + 3 + 1);
  for (const GradientPass* p : {&full, &ops, &rec, &ckpt, &rec3}) {
    const graph::Schedule& s = p->schedule();
    CHECK_FALSE(planner::find_choice_overlap(s.buffers(), s.choices(), s.plan()));
    CHECK(p->arena_bytes() == s.plan().arena_bytes);
  }
}

TEST_CASE("step configurations are validated") {
  SearchSpace s = tiny_space();
  CHECK_THROWS_WITH((StepConfig{.split = 4}.validate(s, 6)), Catch::Contains("cannot be split into 4"));
  CHECK_THROWS_WITH((StepConfig{.split = 0}.validate(s, 6)), Catch::Contains("split must be at least 1"));
  CHECK_THROWS_WITH((StepConfig{.mode = Mode::ops, .k_grad = 9}.validate(s, 6)), Catch::Contains("k_grad 9"));
  CHECK_THROWS_WITH(mode_from_name("sbs"), Catch::Contains("unknown mode 'sbs'"));
  CHECK(mode_from_name("ops+pairs+sbs") == Mode::ops_pairs_sbs);
  CHECK(sbs_variant_from_name("checkpoint") == SbsVariant::checkpoint);
}

TEST_CASE("the memory budget picks the fastest setting that fits, or refuses naming the smallest peak") {
  const SearchSpace s = tiny_space();
  SearchOptions o;
  o.batch = 6;
  const std::vector<StepConfig> order = candidate_configs(s, o);
  REQUIRE(order.size() == 4 * 5);  // splits 1, 2, 3, 6; five settings each
  CHECK(order.front().mode == Mode::full);
  CHECK(order.front().split == 1);
  CHECK(order.back().mode == Mode::ops_pairs_sbs);
  CHECK(order.back().sbs == SbsVariant::recompute);
  CHECK(order.back().split == 6);  // micro-batches of one image (split 6) come last, the fastest of them first
  CHECK(order[14].split == 3);
  CHECK(order[15].split == 6);
  CHECK(order[15].mode == Mode::full);
  for (size_t i = 0; i < 15; ++i) CHECK(order[i].split < 6);

  ParamStore params;
  params.store_weight_gradients(false);
  init_search_params(params, s, 1);
  o.step = {.mode = Mode::full};
  const StepEstimate full = estimate_step(s, o, params);
  // The smallest of every candidate (with the step tables counted, the most
  // micro-batches is not always the smallest on a space this small).
  StepEstimate least = full;
  for (const StepConfig& c : candidate_configs(s, o)) {
    SearchOptions oc = o;
    oc.step = c;
    const StepEstimate e = estimate_step(s, oc, params);
    if (e.total_bytes() < least.total_bytes()) least = e;
  }
  CHECK(least.total_bytes() < full.total_bytes());
  // Sampled modes store the gradients of the sampled weights only.
  o.step = {.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::recompute, .split = 6};
  const StepEstimate sbs = estimate_step(s, o, params);
  CHECK(sbs.persistent_bytes < full.persistent_bytes);
  CHECK(sbs.arena_bytes < full.arena_bytes);

  BudgetChoice roomy = choose_step_config(s, o, full.total_bytes(), 1);
  CHECK(roomy.chosen.config.mode == Mode::full);
  CHECK(roomy.chosen.config.split == 1);
  CHECK(roomy.rejected.empty());

  const size_t middle = (full.total_bytes() + least.total_bytes()) / 2;
  BudgetChoice tight = choose_step_config(s, o, middle, 1);
  CHECK(tight.chosen.total_bytes() <= middle);
  CHECK(!tight.rejected.empty());
  for (const StepEstimate& r : tight.rejected) CHECK(r.total_bytes() > middle);
  CHECK_THAT(tight.why, Catch::Contains("within the budget"));

  CHECK_THROWS_WITH(choose_step_config(s, o, least.total_bytes() - 1, 1),
                    Catch::Contains("smallest planned peak") && Catch::Contains(least.config.flags()));
}
