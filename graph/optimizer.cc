#include "graph/optimizer.h"

#include <algorithm>
#include <cmath>

#include "runtime/bf16.h"
#include "runtime/error.h"
#include "runtime/kernels/elementwise.h"
#include "runtime/rng.h"
#include "runtime/threading.h"

namespace onnas::graph {

void Optimizer::add_params(ParamStore& params, ParamKind kind) {
  std::vector<std::string> names;
  for (const auto& e : params.entries())
    if (e->kind == kind) names.push_back(e->name);
  for (const auto& n : names) add_param(params, n);
}

void Optimizer::add_param(ParamStore& params, const std::string& name, const uint8_t* element_mask) {
  params.grad(name);  // throws if it has none
  names_.push_back(name);
  trained_.push_back(1);
  masks_.push_back(element_mask);
  state_names_.emplace_back();
  add_state(params, name, element_mask != nullptr);
}

bool Optimizer::stepped(const ParamStore& params, size_t i) const {
  return trained_[i] && params.grad(names_[i]).data() != nullptr;
}

void Sgd::add_state(ParamStore& params, const std::string& name, bool) {
  state_names_.back()[0] = state_name("momentum", name);
  if (o_.momentum != 0.0f) params.add(state_names_.back()[0], params.get(name).shape(), ParamKind::state);
}

void Sgd::step(ParamStore& params) {
  for (size_t k = 0; k < names_.size(); ++k) {
    if (!stepped(params, k)) continue;
    const std::string& name = names_[k];
    Tensor p = params.get(name), g = params.grad(name);
    float* pw = p.f32();
    const float* gw = g.f32();
    const uint8_t* mask = masks_[k];
    float* m = o_.momentum != 0.0f ? params.get(state_names_[k][0]).f32() : nullptr;
    const float lr = lr_, wd = o_.weight_decay, mu = o_.momentum;
    const bool nesterov = o_.nesterov;
    parallel_for(0, p.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        if (mask && !mask[i]) continue;
        float grad = gw[i] + wd * pw[i];
        if (m) {
          m[i] = mu * m[i] + grad;
          grad = nesterov ? grad + mu * m[i] : m[i];
        }
        pw[i] -= lr * grad;
      }
    });
  }
}

Adam::Adam(AdamOptions o) : Optimizer(o.name, o.lr), o_(std::move(o)) {
  if (o_.second_moment != DType::f32 && o_.second_moment != DType::bf16)
    fail("adam '{}': the second moment is kept in f32 or bf16, not {}", o_.name, dtype_name(o_.second_moment));
  if (o_.factored && o_.beta1 != 0.0f)
    fail("adam '{}': a factored second moment is for beta1 = 0 (got {})", o_.name, o_.beta1);
}

void Adam::add_state(ParamStore& params, const std::string& name, bool per_element) {
  // With beta1 = 0 (the search's weight optimizer) the first moment is the gradient
  // itself: no state is kept for it, which saves a copy of the weights.
  const Shape shape = params.get(name).shape();
  std::array<std::string, 4>& n = state_names_.back();
  const bool factor = o_.factored && !per_element && shape.rank() >= 2;
  n = {state_name("m", name), state_name(factor ? "v_rows" : "v", name), state_name("v_cols", name),
       state_name("step", name)};
  if (o_.beta1 != 0.0f) params.add(n[0], shape, ParamKind::state);
  const int64_t rows = factor ? shape[0] : 0;
  if (factor) {
    params.add(n[1], Shape{rows}, ParamKind::state);
    params.add(n[2], Shape{shape.numel() / rows}, ParamKind::state);
  } else {
    params.add(n[1], shape, ParamKind::state, o_.second_moment);
  }
  params.add(n[3], per_element ? shape : Shape{1}, ParamKind::state);
  round_keys_.push_back(fnv1a(name.data(), name.size()));
  factored_rows_.push_back(rows);
  row_scratch_.resize(std::max(row_scratch_.size(), size_t(rows)));
}

void Adam::step(ParamStore& params) {
  const float b1 = o_.beta1, b2 = o_.beta2, eps = o_.eps, wd = o_.weight_decay, lr = lr_;
  for (size_t k = 0; k < names_.size(); ++k) {
    if (!stepped(params, k)) continue;
    if (factored_rows_[k] > 0) {
      step_factored(params, k);
      continue;
    }
    const std::string& name = names_[k];
    Tensor p = params.get(name);
    float* pw = p.f32();
    const float* gw = params.grad(name).f32();
    float* m = b1 != 0.0f ? params.get(state_names_[k][0]).f32() : nullptr;
    const Tensor vt = params.get(state_names_[k][1]);
    float* v = o_.second_moment == DType::f32 ? vt.f32() : nullptr;
    uint16_t* vh = o_.second_moment == DType::bf16 ? vt.bf16() : nullptr;
    float* t = params.get(state_names_[k][3]).f32();
    const uint8_t* mask = masks_[k];
    const uint64_t key = round_keys_[k];
    // v = b2 * v + (1 - b2) * grad^2, in f32 or through bf16; returns the f32 value.
    auto second_moment = [&](int64_t i, float grad, float step) {
      if (v) return v[i] = b2 * v[i] + (1.0f - b2) * grad * grad;
      const float vi = b2 * bf16_to_f32(vh[i]) + (1.0f - b2) * grad * grad;
      vh[i] = f32_to_bf16_stochastic(vi, random_bits16(key, uint64_t(step), uint64_t(i)));
      return vi;
    };
    auto update = [&](int64_t i, float step) {
      const float bc1 = float(1.0 - std::pow(double(b1), double(step)));
      const float inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(double(b2), double(step))));
      float grad = gw[i] + wd * pw[i];
      float mi = grad;
      if (m) mi = m[i] = b1 * m[i] + (1.0f - b1) * grad;
      const float vi = second_moment(i, grad, step);
      pw[i] -= (lr / bc1) * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
    };
    if (mask) {  // a small tensor (alpha, beta): one step count per element
      for (int64_t i = 0; i < p.numel(); ++i)
        if (mask[i]) update(i, t[i] += 1.0f);
      continue;
    }
    const float step = t[0] += 1.0f;
    const float bc1 = float(1.0 - std::pow(double(b1), double(step)));
    const float step_size = lr / bc1;
    const float inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(double(b2), double(step))));
    parallel_for(0, p.numel(), 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        float grad = gw[i] + wd * pw[i];
        float mi = grad;
        if (m) mi = m[i] = b1 * m[i] + (1.0f - b1) * grad;
        const float vi = second_moment(i, grad, step);
        pw[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
      }
    });
  }
}

void Adam::step_factored(ParamStore& params, size_t k) {
  const float b2 = o_.beta2, eps = o_.eps, wd = o_.weight_decay;
  const std::string& name = names_[k];
  Tensor p = params.get(name);
  float* pw = p.f32();
  const float* gw = params.grad(name).f32();
  float* vr = params.get(state_names_[k][1]).f32();
  float* vc = params.get(state_names_[k][2]).f32();
  float* t = params.get(state_names_[k][3]).f32();
  const int64_t rows = factored_rows_[k], cols = p.numel() / rows;
  const float step = t[0] += 1.0f;
  const float inv_sqrt_bc2 = float(1.0 / std::sqrt(1.0 - std::pow(double(b2), double(step))));
  auto grad = [&](int64_t i) { return gw[i] + wd * pw[i]; };
  // Every sum below runs in one fixed order: the same bits with any number of threads.
  parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      float s = 0.0f;
      for (int64_t c = 0; c < cols; ++c) s += grad(r * cols + c) * grad(r * cols + c);
      vr[r] = b2 * vr[r] + (1.0f - b2) * s;
    }
  });
  parallel_for(0, cols, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      float s = 0.0f;
      for (int64_t r = 0; r < rows; ++r) s += grad(r * cols + c) * grad(r * cols + c);
      vc[c] = b2 * vc[c] + (1.0f - b2) * s;
    }
  });
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += vr[r];
  // v_ij = R_i C_j / sum(R), bias-corrected; all zero (no gradient yet) leaves v at zero.
  const float inv_total = total > 0.0 ? float(1.0 / total) : 0.0f;
  auto unclipped = [&](int64_t r, int64_t c, float row) {
    return grad(r * cols + c) / (std::sqrt(row * vc[c]) * inv_sqrt_bc2 + eps);
  };
  // The update's RMS over the parameter, for the clipping.
  double* row_sq = row_scratch_.data();
  parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float row = vr[r] * inv_total;
      double s = 0.0;
      for (int64_t c = 0; c < cols; ++c) s += double(unclipped(r, c, row)) * unclipped(r, c, row);
      row_sq[r] = s;
    }
  });
  double sq = 0.0;
  for (int64_t r = 0; r < rows; ++r) sq += row_sq[r];
  const double rms = std::sqrt(sq / double(p.numel()));
  const float step_size = lr_ / float(std::max(1.0, rms));
  parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float row = vr[r] * inv_total;
      for (int64_t c = 0; c < cols; ++c) pw[r * cols + c] -= step_size * unclipped(r, c, row);
    }
  });
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
