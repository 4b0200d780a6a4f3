#include "graph/optimizer.h"

#include <cmath>

#include "runtime/kernels/elementwise.h"
#include "runtime/threading.h"

namespace onnas::graph {

void Optimizer::add_params(ParamStore& params, ParamKind kind) {
  std::vector<std::string> names;
  for (const auto& e : params.entries())
    if (e->kind == kind) names.push_back(e->name);
  for (const auto& n : names) add_param(params, n);
}

void Optimizer::add_param(ParamStore& params, const std::string& name) {
  params.grad(name);  // throws if it has none
  names_.push_back(name);
  add_state(params, name);
}

void Sgd::add_state(ParamStore& params, const std::string& name) {
  if (o_.momentum != 0.0f) params.add(state_name("momentum", name), params.get(name).shape(), ParamKind::state);
}

void Sgd::step(ParamStore& params) {
  for (const std::string& name : names_) {
    Tensor p = params.get(name), g = params.grad(name);
    float* pw = p.f32();
    const float* gw = g.f32();  // nullptr: no storage this step, the gradient is zero
    float* m = o_.momentum != 0.0f ? params.get(state_name("momentum", name)).f32() : nullptr;
    const float lr = lr_, wd = o_.weight_decay, mu = o_.momentum;
    const bool nesterov = o_.nesterov;
    parallel_for(0, p.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        float grad = (gw ? gw[i] : 0.0f) + wd * pw[i];
        if (m) {
          m[i] = mu * m[i] + grad;
          grad = nesterov ? grad + mu * m[i] : m[i];
        }
        pw[i] -= lr * grad;
      }
    });
  }
}

void Adam::add_state(ParamStore& params, const std::string& name) {
  // With beta1 = 0 (the search's weight optimizer) the first moment is the gradient
  // itself: no state is kept for it, which saves a copy of the weights.
  if (o_.beta1 != 0.0f) params.add(state_name("m", name), params.get(name).shape(), ParamKind::state);
  params.add(state_name("v", name), params.get(name).shape(), ParamKind::state);
  if (!params.contains(prefix_ + ".step")) params.add(prefix_ + ".step", Shape{1}, ParamKind::state);
}

void Adam::step(ParamStore& params) {
  if (names_.empty()) return;
  float& t = params.get(prefix_ + ".step").f32()[0];
  t += 1.0f;
  const double bc1 = 1.0 - std::pow(double(o_.beta1), double(t));
  const double bc2 = 1.0 - std::pow(double(o_.beta2), double(t));
  const float step_size = float(lr_ / bc1);
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float b1 = o_.beta1, b2 = o_.beta2, eps = o_.eps, wd = o_.weight_decay;
  for (const std::string& name : names_) {
    Tensor p = params.get(name);
    float* pw = p.f32();
    const float* gw = params.grad(name).f32();  // nullptr: no storage this step, the gradient is zero
    float* m = b1 != 0.0f ? params.get(state_name("m", name)).f32() : nullptr;
    float* v = params.get(state_name("v", name)).f32();
    parallel_for(0, p.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        float grad = (gw ? gw[i] : 0.0f) + wd * pw[i];
        float mi = grad;
        if (m) mi = m[i] = b1 * m[i] + (1.0f - b1) * grad;
        v[i] = b2 * v[i] + (1.0f - b2) * grad * grad;
        pw[i] -= step_size * mi / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
      }
    });
  }
}

double grad_norm(const ParamStore& params, const std::vector<std::string>& names) {
  double sq = 0.0;
  for (const std::string& name : names) {
    Tensor g = params.grad(name);
    if (g.empty()) continue;
    sq += kernels::dot(g.numel(), g.f32(), g.f32());
  }
  return std::sqrt(sq);
}

double clip_grad_norm(const ParamStore& params, const std::vector<std::string>& names, double max_norm) {
  double norm = grad_norm(params, names);
  if (norm > max_norm && norm > 0.0) {
    float s = float(max_norm / (norm + 1e-6));
    for (const std::string& name : names) {
      Tensor g = params.grad(name);
      if (g.empty()) continue;
      kernels::scale(g.numel(), s, g.f32(), g.f32());
    }
  }
  return norm;
}

float cosine_lr(float lr_max, float lr_min, int64_t step, int64_t total_steps) {
  if (total_steps <= 1) return lr_max;
  double t = double(std::min(step, total_steps - 1)) / double(total_steps - 1);
  return float(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + std::cos(3.141592653589793 * t)));
}

}  // namespace onnas::graph
