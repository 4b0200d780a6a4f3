// Gradient truth from outside our own emitter: the gradients of a tiny supernet that
// PyTorch computed (tests/data/make_golden_grads.py, bench/compare_pytorch.py's
// supernet, in float64) for stored parameters, a stored batch and fixed samples, held
// against ours in every memory mode — full, ops, ops+pairs, and ops+pairs+sbs in both
// variants (exact, so it must give the ops+pairs truth). The SBS test of
// test_search_step.cc compares two of our own passes, where a bug of the emitter
// would cancel out; here it cannot.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "nas/network.h"
#include "nas/search_step.h"
#include "runtime/serialize/safetensors.h"

using namespace onnas;
using namespace onnas::nas;

namespace {

// Our gradients of `kind` (weights, or alpha/beta) for one batch and one sample, left
// in params' gradients. The one place in this file that hands a sample to a search
// step: when the sample becomes run-time data of a program compiled once, only this
// function changes.
void our_gradients(const SearchSpace& space, const StepConfig& config, const Sample& sample, ParamKind kind,
                   ParamStore& params, const Tensor& x, const Tensor& y) {
  StepGates gates(space, config);
  GradientPass pass(space, config, x.shape()[0], gates, kind, params);
  graph::GateValues values;
  if (gates.space()) values = graph::GateValues(*gates.space());
  gates.apply(sample, values);
  Arena arena(std::max<size_t>(pass.arena_bytes(), kAlignment));
  params.zero_grads();
  pass.run(arena, params, x, y, gates.space() ? &values : nullptr);
}

const std::string kGolden = std::string(ONNAS_SOURCE_DIR) + "/tests/data/golden_grads.safetensors";

// The golden file, and the supernet of its space with the stored parameters.
struct Golden {
  SafetensorsFile file = read_safetensors(kGolden);
  SearchSpace space;
  ParamStore params;
  Tensor x, y;

  Golden() {
    space = SearchSpace::from_json(nlohmann::json::parse(file.metadata.at("space")), kGolden);
    init_search_params(params, space, 0);
    for (const auto& e : params.entries()) {
      if (e->kind != ParamKind::weight && e->kind != ParamKind::arch) continue;
      const SafetensorsTensor& t = file.get("param/" + e->name);
      REQUIRE(t.shape == e->tensor.shape());
      std::memcpy(e->tensor.data(), t.data.data(), t.data.bytes());
    }
    x = file.get("x").tensor();
    y = file.get("y").tensor();
  }

  Sample sample(const std::string& mode) const {
    if (mode == "full") return full_sample(space);
    Sample s;
    for (bool reduction : {false, true}) {
      const std::string kind = reduction ? "reduce" : "normal";
      CellSample& c = reduction ? s.reduce : s.normal;
      const Tensor ops = file.get("sample/" + mode + "/grad_ops/" + kind).tensor();
      const Tensor pair = file.get("sample/" + mode + "/grad_pair/" + kind).tensor();
      REQUIRE(ops.shape() == Shape{space.num_edges(), space.num_ops()});
      c.grad_ops.assign(size_t(space.num_edges()), std::vector<uint8_t>(size_t(space.num_ops())));
      for (int e = 0; e < space.num_edges(); ++e)
        for (int o = 0; o < space.num_ops(); ++o)
          c.grad_ops[size_t(e)][size_t(o)] = uint8_t(ops.i32()[e * space.num_ops() + o]);
      c.grad_pair.assign(pair.i32(), pair.i32() + pair.numel());
    }
    return s;
  }
};

// Each tensor's error relative to its own norm, floored at 1e-3 of the largest
// gradient norm of its kind (a gradient that is ~0 by cancellation is judged at the
// scale of the whole). PyTorch's truth is float64, ours float32. Where the truth is
// exactly zero (a non-sampled op, pair, alpha or beta entry), ours must be too.
struct Comparison {
  int compared = 0, zero = 0, zero_mismatches = 0;
  double worst = 0;
  std::string worst_name;
};

Comparison compare_with_golden(const Golden& golden, const ParamStore& params, const std::string& truth, ParamKind kind) {
  double largest = 0;
  for (const auto& e : params.entries())
    if (e->kind == kind) {
      const Tensor w = golden.file.get("grad/" + truth + "/" + e->name).tensor();
      double n = 0;
      for (int64_t i = 0; i < w.numel(); ++i) n += double(w.f32()[i]) * w.f32()[i];
      largest = std::max(largest, std::sqrt(n));
    }
  REQUIRE(largest > 0);
  Comparison c;
  for (const auto& e : params.entries()) {
    if (e->kind != kind) continue;
    const Tensor want = golden.file.get("grad/" + truth + "/" + e->name).tensor();
    const Tensor got = params.grad(e->name);
    REQUIRE(want.shape() == e->tensor.shape());
    double diff = 0, norm = 0;
    bool want_zero = true, got_zero = true;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const double w = want.f32()[i], g = got.empty() ? 0.0 : got.f32()[i];
      diff += (g - w) * (g - w);
      norm += w * w;
      want_zero &= w == 0.0;
      got_zero &= g == 0.0;
    }
    if (want_zero) {
      ++c.zero;
      c.zero_mismatches += !got_zero;
      continue;
    }
    const double rel = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-3 * largest);
    if (rel > c.worst) c.worst = rel, c.worst_name = e->name;
    ++c.compared;
  }
  return c;
}

}  // namespace

TEST_CASE("our gradients equal PyTorch's in every memory mode (tests/data/golden_grads.safetensors)") {
  Golden golden;
  struct ModeCase {
    const char* name;
    StepConfig config;
    const char* truth;  // the sample and the PyTorch gradients it must give
  };
  const ModeCase modes[] = {
      {"full", {.mode = Mode::full}, "full"},
      {"ops", {.mode = Mode::ops}, "ops"},
      {"ops+pairs", {.mode = Mode::ops_pairs}, "ops+pairs"},
      {"ops+pairs+sbs, recompute", {.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::recompute}, "ops+pairs"},
      {"ops+pairs+sbs, checkpoint", {.mode = Mode::ops_pairs_sbs, .sbs = SbsVariant::checkpoint}, "ops+pairs"},
  };
  for (const ModeCase& m : modes) {
    const Sample sample = golden.sample(m.truth);
    for (ParamKind kind : {ParamKind::weight, ParamKind::arch}) {
      INFO(m.name << ", " << param_kind_name(kind));
      our_gradients(golden.space, m.config, sample, kind, golden.params, golden.x, golden.y);
      const Comparison c = compare_with_golden(golden, golden.params, m.truth, kind);
      INFO("worst: " << c.worst_name);
      CHECK(c.compared > 0);
      CHECK(c.worst < 1e-4);
      CHECK(c.zero_mismatches == 0);
      std::printf("golden gradients, %-26s %-6s: %3d tensors within %.1e of PyTorch (worst %s), %d exactly zero\n", m.name,
                  param_kind_name(kind), c.compared, c.worst, c.worst_name.c_str(), c.zero);
    }
  }
}

TEST_CASE("the golden-gradient comparison sees a wrong gradient (it has teeth)") {
  Golden golden;
  // Gradients of another sample held against a truth: the ops+pairs sample's against
  // the ops truth (its sampled-out pairs must show), the ops sample's against full.
  // Each sample runs in its own mode (an ops sample opens every pair, which ops+pairs
  // does not admit).
  struct Wrong {
    const char* sample;
    Mode mode;
    const char* truth;
  };
  const Wrong wrong[] = {{"ops+pairs", Mode::ops_pairs, "ops"}, {"ops", Mode::ops, "full"}};
  for (const auto& [sample, mode, truth] : wrong)
    for (ParamKind kind : {ParamKind::weight, ParamKind::arch}) {
      INFO(sample << " against " << truth << ", " << param_kind_name(kind));
      our_gradients(golden.space, {.mode = mode}, golden.sample(sample), kind, golden.params, golden.x, golden.y);
      const Comparison c = compare_with_golden(golden, golden.params, truth, kind);
      CHECK(c.worst > 1e-2);
    }
}
