// Optimizers over a ParamStore: each steps a chosen set of parameters with their
// gradients (params.grad(name)); state (momentum, Adam moments and step counts) lives
// in the store as ParamKind::state tensors named "<optimizer>.<slot>/<param>", so a
// checkpoint of the store holds everything needed to resume.
//
// A parameter that got no gradient in a step is left untouched, as PyTorch's
// optimizers skip a parameter whose gradient is None: no weight decay, no moment
// update, its step count does not advance. "No gradient" is a gradient without
// storage (ParamStore::set_grad_view), a parameter marked untrained for the step
// (set_trained), or, for a parameter added with per-element masks, each element whose
// mask flag is 0 (alpha entries of the ops a step did not sample).
//
//   Adam arch({.lr = 3e-4f, .beta1 = 0.5f, .beta2 = 0.999f, .weight_decay = 1e-3f});
//   arch.add_param(params, "alpha.normal", /*element_mask=*/mask.data());
//   ... run the program (gradients accumulate), update mask ...
//   clip_grad_norm(params, arch.params(), 5.0f);
//   arch.step(params);                               // and zero the gradients yourself
#pragma once

#include <array>
#include <string>
#include <vector>

#include "runtime/param_store.h"

namespace onnas::graph {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Adds every entry of `kind` (weight or arch), or one by name. With `element_mask`
  // (numel flags the caller owns and updates before each step), only the elements
  // whose flag is 1 are stepped, each with its own step count.
  void add_params(ParamStore& params, ParamKind kind);
  void add_param(ParamStore& params, const std::string& name, const uint8_t* element_mask = nullptr);
  const std::vector<std::string>& params() const { return names_; }
  // Whether parameter i (in params() order) got a gradient this step (default: yes).
  void set_trained(size_t i, bool trained) { trained_[i] = trained ? 1 : 0; }
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  virtual void step(ParamStore& params) = 0;

 protected:
  explicit Optimizer(std::string prefix, float lr) : prefix_(std::move(prefix)), lr_(lr) {}
  virtual void add_state(ParamStore& params, const std::string& name, bool per_element) = 0;
  // Whether parameter i is stepped at all this step (trained, with gradient storage).
  bool stepped(const ParamStore& params, size_t i) const;
  std::string state_name(const std::string& slot, const std::string& param) const {
    return prefix_ + "." + slot + "/" + param;
  }
  std::string prefix_;
  float lr_;
  std::vector<std::string> names_;
  std::vector<uint8_t> trained_;
  std::vector<const uint8_t*> masks_;
  // Per parameter, the names of its state tensors (slots as each optimizer numbers
  // them), made once by add_state so that a step builds no strings.
  std::vector<std::array<std::string, 4>> state_names_;
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
  void add_state(ParamStore& params, const std::string& name, bool per_element) override;
  SgdOptions o_;
};

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // L2, added to the gradient (PyTorch Adam, not AdamW)
  // The second moment's storage: f32, or bf16 (half the bytes; each update is computed
  // in f32 and stored rounded stochastically, runtime/bf16.h, so the average stays
  // exact in expectation). The step uses the f32 value before rounding.
  DType second_moment = DType::f32;
  // Factored second moment (Adafactor's, Shazeer & Stern 2018): for a parameter of two
  // or more dimensions, seen as a matrix of shape[0] rows, only the moving averages of
  // the squared gradient's row sums R and column sums C are kept, and the step uses
  // v_ij = R_i C_j / sum(R), exact when the squared gradient is of rank one. Rows plus
  // columns instead of rows times columns: for the search's convolutions 1-10% of the
  // weights' bytes. One-dimensional and masked parameters keep the whole v. Since an
  // estimate of v can fall short of an element's squared gradient, the update of a
  // factored parameter is clipped as Adafactor's (d = 1): divided by max(1, RMS) of
  // g / sqrt(v) over the parameter. Otherwise Adam's step (bias correction, eps, the
  // learning rate as given: no relative step size). Needs beta1 = 0.
  bool factored = false;
  std::string name = "adam";
};

// PyTorch's Adam with bias correction, one step count per parameter (per element for a
// masked one). The method's weight step uses betas (0, 0.999).
class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions o);
  void step(ParamStore& params) override;

 private:
  void add_state(ParamStore& params, const std::string& name, bool per_element) override;
  AdamOptions o_;
  // Per parameter, the key of its stochastic rounding draws (a hash of its name, so the
  // draws do not depend on the order parameters were added in).
  std::vector<uint64_t> round_keys_;
  // Per parameter: whether its second moment is factored (then its rows; columns are
  // numel / rows).
  std::vector<int64_t> factored_rows_;
  std::vector<double> row_scratch_;  // per row of the widest factored parameter, sized by add_state
  void step_factored(ParamStore& params, size_t k);
};

// Scales the gradients of `names` so their global L2 norm is at most max_norm.
// Returns the norm before clipping.
double clip_grad_norm(const ParamStore& params, const std::vector<std::string>& names, double max_norm);
// The L2 norm of those gradients.
double grad_norm(const ParamStore& params, const std::vector<std::string>& names);

// Learning-rate schedules, as functions of the step (0-based) and the total.
float cosine_lr(float lr_max, float lr_min, int64_t step, int64_t total_steps);

}  // namespace onnas::graph
