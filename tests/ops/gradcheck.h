// OpTester: a fluent tester for one op (or a few) through the whole engine, after
// XNNPACK's operator testers and ggml's test-backend-ops. Declare the inputs and
// parameters, build the op on them, then
//
//   - check_gradients(y): draws a random projection r of y (L = <r, y>), asks
//     graph::backward for the gradients with the seeded form backward(g, {{y, r}}, wrt),
//     compiles and runs the program (parameter gradients accumulate in the
//     ParamStore, input gradients are program outputs), and compares every gradient
//     with central finite differences of L, each L computed by re-running a compiled
//     forward-only program of the same graph;
//   - forward(y): compiles the forward alone, runs it, returns y (for comparisons
//     with runtime/kernels/reference.h).
//
//   OpTester t;
//   ValueId x = t.input("x", Shape{2, 3, 5, 7});
//   ValueId w = t.weight("w", Shape{4, 3, 3, 3});
//   t.check_gradients(ops::conv2d(t.graph(), x, w, {.stride = 2, .pad = 1}));
//
// Finite differences run in float through the real kernels, so the step is large
// (1e-2 by default) and the tolerance is relative to the gradient's scale. Kinks are
// kept away by the fills: Fill::away_from_zero for ReLU inputs, Fill::distinct for
// max pooling (values spaced wider than two steps, so no near-ties).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "graph/compile.h"
#include "graph/ir.h"
#include "graph/op.h"
#include "runtime/param_store.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace onnas::test {

using graph::Graph;
using graph::ValueId;

enum class Fill {
  normal,          // N(0, 1)
  away_from_zero,  // |v| in [0.2, 1], random sign: no ReLU kink within a step
  distinct,        // a shuffled grid spaced 0.05 apart, centred on 0: no near-ties
  positive,        // [0.5, 1.5): variances
};

class OpTester {
 public:
  explicit OpTester(uint64_t seed = 1) : rng_(seed) {}

  Graph& graph() { return g_; }
  ParamStore& params() { return params_; }

  OpTester& step(double eps) {
    eps_ = eps;
    return *this;
  }
  // Passes when |analytic - numeric| <= rtol * scale + atol, scale being the largest
  // magnitude of either gradient over the tensor.
  OpTester& tolerance(double rtol, double atol) {
    rtol_ = rtol;
    atol_ = atol;
    return *this;
  }
  // Elements perturbed per tensor at most (a random subset beyond that).
  OpTester& max_probes(int64_t n) {
    max_probes_ = n;
    return *this;
  }

  // An input fed at run time whose gradient is checked.
  ValueId input(const std::string& name, const Shape& shape, Fill fill = Fill::normal) {
    ValueId v = g_.input(name, {shape, DType::f32});
    fill_tensor(feed_tensor(v), fill);
    probes_.push_back({v, false, false});
    return v;
  }
  // An input fed at run time, not differentiated (constants of the test).
  ValueId constant(const std::string& name, const Shape& shape, Fill fill = Fill::normal) {
    ValueId v = g_.input(name, {shape, DType::f32});
    fill_tensor(feed_tensor(v), fill);
    return v;
  }
  // i32 labels in [0, classes).
  ValueId labels(const std::string& name, int64_t n, int64_t classes) {
    ValueId v = g_.input(name, {Shape{n}, DType::i32});
    Tensor t = feed_tensor(v);
    for (int64_t i = 0; i < n; ++i) t.i32()[i] = int32_t(rng_.uniform_int(classes));
    return v;
  }
  // A trainable ParamStore tensor whose gradient (accumulated by run()) is checked.
  ValueId weight(const std::string& name, const Shape& shape, Fill fill = Fill::normal,
                 ParamKind kind = ParamKind::weight) {
    fill_tensor(params_.add_weight(name, shape, kind), fill);
    ValueId v = g_.param(name, {shape, DType::f32});
    probes_.push_back({v, true, false});
    return v;
  }
  // A ParamStore buffer (BN running statistics): read, maybe updated, not differentiated.
  // Restored before every run, so updates do not drift between runs.
  ValueId buffer(const std::string& name, const Shape& shape, Fill fill = Fill::normal) {
    fill_tensor(params_.add(name, shape, ParamKind::buffer), fill);
    return g_.param(name, {shape, DType::f32});
  }
  // The gradient of v (declared above) must be exactly zero (it sits behind a
  // stop_gradient); finite differences are skipped for it, since the forward does
  // depend on v.
  OpTester& expect_zero_gradient(ValueId v) {
    for (Probe& p : probes_)
      if (p.value == v) p.expect_zero = true;
    return *this;
  }

  // The data of an input or parameter (to compute references).
  Tensor data(ValueId v) const {
    const graph::Value& val = g_.value(v);
    if (val.kind == graph::ValueKind::param) return params_.get(val.name);
    for (const auto& [value, buffer] : feeds_)
      if (value == v) return Tensor(buffer->data(), val.type.shape, val.type.dtype);
    FAIL("no data for " << val.name);
    return {};
  }

  // Runs the forward only and returns y.
  std::vector<float> forward(ValueId y) {
    graph::Program p = graph::compile(g_, outputs_only(y));
    Arena arena(std::max<size_t>(p.arena_bytes(), kAlignment));
    p.run(arena, params_, feeds());
    Tensor t = p.output(arena, y);
    return std::vector<float>(t.f32(), t.f32() + t.numel());
  }

  // The checks described at the top of this file. After it, program() is the compiled
  // forward + backward program and gradient_value(v) the gradient autodiff returned.
  void check_gradients(ValueId y) {
    REQUIRE(g_.type(y).dtype == DType::f32);
    const ValueId r = g_.input("seed." + g_.name(y), g_.type(y));
    fill_tensor(feed_tensor(r), Fill::normal);

    std::vector<ValueId> wrt;
    for (const Probe& p : probes_) wrt.push_back(p.value);
    const graph::Seed seed{y, r};
    grads_ = graph::backward(g_, std::span<const graph::Seed>(&seed, 1), wrt);

    graph::CompileOptions options = outputs_only(y);
    for (size_t i = 0; i < probes_.size(); ++i) {
      if (grads_[i] == graph::kNoValue) continue;
      if (probes_[i].is_weight)
        options.param_grads.push_back({probes_[i].value, grads_[i]});
      else if (in_arena(grads_[i]))
        options.outputs.push_back(grads_[i]);
    }
    program_ = std::make_unique<graph::Program>(graph::compile(g_, options));
    graph::Program forward_only = graph::compile(g_, outputs_only(y));
    Arena arena(std::max({program_->arena_bytes(), forward_only.arena_bytes(), kAlignment}));

    const std::vector<std::vector<float>> saved_buffers = snapshot_buffers();
    params_.zero_grads();
    program_->run(arena, params_, feeds());
    std::vector<std::vector<double>> analytic;
    for (size_t i = 0; i < probes_.size(); ++i) analytic.push_back(analytic_gradient(i, arena));

    const Tensor rt = data(r);
    auto loss = [&] {
      restore_buffers(saved_buffers);
      forward_only.run(arena, params_, feeds());
      const Tensor yt = forward_only.output(arena, y);
      double l = 0;
      for (int64_t i = 0; i < yt.numel(); ++i) l += double(rt.f32()[i]) * double(yt.f32()[i]);
      return l;
    };

    for (size_t i = 0; i < probes_.size(); ++i) {
      const Probe& p = probes_[i];
      INFO("gradient of '" << g_.name(p.value) << "' " << g_.shape(p.value).str() << " (output '" << g_.name(y)
                           << "')");
      if (p.expect_zero) {
        const bool all_zero = std::all_of(analytic[i].begin(), analytic[i].end(), [](double a) { return a == 0.0; });
        CHECK(all_zero);
        continue;
      }
      const Tensor t = data(p.value);
      std::vector<int64_t> at(size_t(t.numel()));
      for (size_t k = 0; k < at.size(); ++k) at[k] = int64_t(k);
      if (int64_t(at.size()) > max_probes_) {
        for (size_t k = at.size() - 1; k > 0; --k) std::swap(at[k], at[size_t(rng_.uniform_int(int64_t(k) + 1))]);
        at.resize(size_t(max_probes_));
      }
      std::vector<double> numeric;
      double scale = 0;
      for (int64_t k : at) {
        const float original = t.f32()[k];
        t.f32()[k] = float(double(original) + eps_);
        const double up = loss();
        t.f32()[k] = float(double(original) - eps_);
        const double down = loss();
        t.f32()[k] = original;
        // The perturbation actually applied, after rounding to float.
        const double h = double(float(double(original) + eps_)) - double(float(double(original) - eps_));
        numeric.push_back((up - down) / h);
        scale = std::max({scale, std::abs(numeric.back()), std::abs(analytic[i][size_t(k)])});
      }
      double worst = -1;
      size_t worst_at = 0;
      for (size_t j = 0; j < at.size(); ++j) {
        const double excess = std::abs(analytic[i][size_t(at[j])] - numeric[j]) - (rtol_ * scale + atol_);
        if (excess > worst || j == 0) worst = excess, worst_at = j;
      }
      INFO("worst element " << at[worst_at] << ": analytic " << analytic[i][size_t(at[worst_at])] << ", numeric "
                            << numeric[worst_at] << ", gradient scale " << scale);
      CHECK(worst <= 0);
    }
    restore_buffers(saved_buffers);
  }

  const graph::Program& program() const { return *program_; }
  ValueId gradient_value(ValueId v) const {
    for (size_t i = 0; i < probes_.size(); ++i)
      if (probes_[i].value == v) return grads_.at(i);
    return graph::kNoValue;
  }

 private:
  struct Probe {
    ValueId value;
    bool is_weight;
    bool expect_zero;
  };

  static graph::CompileOptions outputs_only(ValueId y) {
    graph::CompileOptions options;
    options.outputs = {y};
    return options;
  }

  bool in_arena(ValueId v) const {
    const graph::ValueKind k = g_.value(v).kind;
    return k == graph::ValueKind::activation || k == graph::ValueKind::gradient;
  }

  Tensor feed_tensor(ValueId v) {
    const graph::TensorType& type = g_.type(v);
    feeds_.emplace_back(v, std::make_unique<Buffer>(std::max<size_t>(type.bytes(), 4)));
    return Tensor(feeds_.back().second->data(), type.shape, type.dtype);
  }

  std::vector<graph::Feed> feeds() const {
    std::vector<graph::Feed> out;
    for (const auto& [v, buffer] : feeds_) out.push_back({v, Tensor(buffer->data(), g_.shape(v), g_.type(v).dtype)});
    return out;
  }

  void fill_tensor(const Tensor& t, Fill fill) {
    const int64_t n = t.numel();
    float* d = t.f32();
    switch (fill) {
      case Fill::normal:
        for (int64_t i = 0; i < n; ++i) d[i] = rng_.normal();
        break;
      case Fill::away_from_zero:
        for (int64_t i = 0; i < n; ++i) d[i] = (rng_.uniform() < 0.5f ? -1.0f : 1.0f) * (0.2f + 0.8f * rng_.uniform());
        break;
      case Fill::distinct: {
        std::vector<int64_t> rank(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) rank[size_t(i)] = i;
        for (int64_t i = n - 1; i > 0; --i) std::swap(rank[size_t(i)], rank[size_t(rng_.uniform_int(i + 1))]);
        for (int64_t i = 0; i < n; ++i) d[i] = 0.05f * float(rank[size_t(i)] - n / 2);
        break;
      }
      case Fill::positive:
        for (int64_t i = 0; i < n; ++i) d[i] = 0.5f + rng_.uniform();
        break;
    }
  }

  std::vector<double> analytic_gradient(size_t i, const Arena& arena) const {
    const Probe& p = probes_[i];
    const ValueId grad = grads_[i];
    std::vector<double> out(size_t(g_.shape(p.value).numel()), 0.0);
    if (grad == graph::kNoValue) return out;
    // A parameter's gradient is what run() accumulated into the store (zeroed before).
    const Tensor t = p.is_weight       ? params_.grad(g_.name(p.value))
                     : in_arena(grad) ? program_->output(arena, grad)
                                      : data(grad);  // the seed itself (e.g. through add)
    for (size_t k = 0; k < out.size(); ++k) out[k] = double(t.f32()[k]);
    return out;
  }

  std::vector<std::vector<float>> snapshot_buffers() const {
    std::vector<std::vector<float>> out;
    for (const auto& e : params_.entries())
      if (e->kind == ParamKind::buffer) out.emplace_back(e->tensor.f32(), e->tensor.f32() + e->tensor.numel());
    return out;
  }
  void restore_buffers(const std::vector<std::vector<float>>& saved) const {
    size_t i = 0;
    for (const auto& e : params_.entries())
      if (e->kind == ParamKind::buffer) std::copy(saved[i].begin(), saved[i].end(), e->tensor.f32()), ++i;
  }

  Graph g_;
  ParamStore params_;
  Rng rng_;
  double eps_ = 1e-2;
  double rtol_ = 1e-2;
  double atol_ = 1e-3;
  int64_t max_probes_ = 256;
  std::vector<std::pair<ValueId, std::unique_ptr<Buffer>>> feeds_;
  std::vector<Probe> probes_;
  std::vector<ValueId> grads_;
  std::unique_ptr<graph::Program> program_;
};

}  // namespace onnas::test
