// Optimizers over a ParamStore: each steps a chosen set of parameters with their
// gradients (params.grad(name)); state (momentum, Adam moments) lives in the store
// as ParamKind::state tensors named "<optimizer>.<slot>/<param>", so a checkpoint of
// the store holds everything needed to resume. A gradient without storage (see
// ParamStore::set_grad_view) is a zero gradient: the step still applies weight decay
// and decays the moments, exactly as a stored zero would.
//
//   Adam arch({.lr = 3e-4f, .beta1 = 0.5f, .beta2 = 0.999f, .weight_decay = 1e-3f});
//   arch.add_params(params, ParamKind::arch);        // alpha, beta
//   ... run the program (gradients accumulate) ...
//   clip_grad_norm(params, arch.params(), 5.0f);
//   arch.step(params);                               // and zero the gradients yourself
#pragma once

#include <string>
#include <vector>

#include "runtime/param_store.h"

namespace onnas::graph {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Adds every entry of `kind` (weight or arch), or one by name.
  void add_params(ParamStore& params, ParamKind kind);
  void add_param(ParamStore& params, const std::string& name);
  const std::vector<std::string>& params() const { return names_; }
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  virtual void step(ParamStore& params) = 0;

 protected:
  explicit Optimizer(std::string prefix, float lr) : prefix_(std::move(prefix)), lr_(lr) {}
  virtual void add_state(ParamStore& params, const std::string& name) = 0;
  std::string state_name(const std::string& slot, const std::string& param) const {
    return prefix_ + "." + slot + "/" + param;
  }
  std::string prefix_;
  float lr_;
  std::vector<std::string> names_;
};

struct SgdOptions {
  float lr = 0.025f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  bool nesterov = false;
  std::string name = "sgd";  // prefix of its state in the store
};

// PyTorch's SGD: g += wd * p; m = momentum * m + g; p -= lr * (nesterov ? g + momentum * m : m).
class Sgd : public Optimizer {
 public:
  explicit Sgd(SgdOptions o) : Optimizer(o.name, o.lr), o_(std::move(o)) {}
  void step(ParamStore& params) override;

 private:
  void add_state(ParamStore& params, const std::string& name) override;
  SgdOptions o_;
};

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // L2, added to the gradient (PyTorch Adam, not AdamW)
  std::string name = "adam";
};

// PyTorch's Adam with bias correction. The method's weight step uses betas (0, 0.999).
class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions o) : Optimizer(o.name, o.lr), o_(std::move(o)) {}
  void step(ParamStore& params) override;

 private:
  void add_state(ParamStore& params, const std::string& name) override;
  AdamOptions o_;
};

// Scales the gradients of `names` so their global L2 norm is at most max_norm.
// Returns the norm before clipping.
double clip_grad_norm(const ParamStore& params, const std::vector<std::string>& names, double max_norm);
// The L2 norm of those gradients.
double grad_norm(const ParamStore& params, const std::vector<std::string>& names);

// Learning-rate schedules, as functions of the step (0-based) and the total.
float cosine_lr(float lr_max, float lr_min, int64_t step, int64_t total_steps);

}  // namespace onnas::graph
