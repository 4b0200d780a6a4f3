#include "nas/sampler.h"

#include <algorithm>
#include <numeric>

#include "runtime/error.h"

namespace onnas::nas {

ArchSampler::ArchSampler(const SearchSpace& space, SamplerOptions options, uint64_t seed)
    : space_(space), options_(options), rng_(seed) {
  if (options_.k_grad < 1) fail("k_grad must be at least 1 (got {})", options_.k_grad);
  if (options_.k_grad > space.num_ops())
    fail("k_grad {} is more than the {} candidate ops", options_.k_grad, space.num_ops());
  if (options_.explore_prob < 0 || options_.explore_prob > 1)
    fail("exploration probability {} is outside [0, 1]", options_.explore_prob);
}

std::vector<float> ArchSampler::alpha_of(const ParamStore& params, bool reduction) const {
  Tensor a = params.get(reduction ? "alpha.reduce" : "alpha.normal");
  return std::vector<float>(a.f32(), a.f32() + a.numel());
}

void ArchSampler::before_update(const ParamStore& params) {
  for (int r = 0; r < 2; ++r) before_[r] = alpha_of(params, r == 1);
}

void ArchSampler::set_history(bool reduction, std::deque<std::vector<float>> deltas) {
  const size_t n = size_t(space_.num_edges()) * size_t(space_.num_ops());
  for (const auto& d : deltas)
    if (d.size() != n) fail("sampler history: a delta of {} values, the space's alpha has {}", d.size(), n);
  while (int(deltas.size()) > options_.history) deltas.pop_front();
  deltas_[reduction ? 1 : 0] = std::move(deltas);
}

void ArchSampler::after_update(const ParamStore& params) {
  for (int r = 0; r < 2; ++r) {
    std::vector<float> now = alpha_of(params, r == 1);
    ONNAS_CHECK(before_[r].size() == now.size(), "after_update without before_update");
    for (size_t i = 0; i < now.size(); ++i) now[i] -= before_[r][i];
    deltas_[r].push_back(std::move(now));
    while (int(deltas_[r].size()) > options_.history) deltas_[r].pop_front();
  }
}

std::vector<double> ArchSampler::expected_alpha(const ParamStore& params, bool reduction,
                                                int64_t remaining_steps) const {
  std::vector<float> a = alpha_of(params, reduction);
  std::vector<double> score(a.begin(), a.end());
  const auto& d = deltas_[reduction ? 1 : 0];
  if (int(d.size()) < options_.history) return score;
  for (size_t i = 0; i < score.size(); ++i) {
    double mean = 0;
    for (const auto& delta : d) mean += delta[i];
    mean /= double(d.size());
    score[i] += double(remaining_steps) * mean;
  }
  return score;
}

std::vector<int> ArchSampler::top_ops(const double* scores, int k, int k_grad) {
  std::vector<int> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  order.resize(size_t(std::min(k, k_grad)));
  return order;
}

Sample ArchSampler::draw(const ParamStore& params, int64_t step, int64_t total_steps) {
  Sample s = full_sample(space_);
  Rng rng = rng_.fork(uint64_t(step));
  const int k = space_.num_ops();
  const int64_t remaining = std::max<int64_t>(0, total_steps - step);
  for (int r = 0; r < 2; ++r) {
    CellSample& c = r ? s.reduce : s.normal;
    if (options_.sample_ops) {
      std::vector<double> score = expected_alpha(params, r == 1, remaining);
      for (int e = 0; e < space_.num_edges(); ++e) {
        std::vector<int> chosen = top_ops(score.data() + size_t(e) * size_t(k), k, options_.k_grad);
        if (rng.uniform_double() < options_.explore_prob) {
          // Explore: k_grad ops uniformly among all but the ranking's top-1.
          std::vector<int> others;
          for (int o = 0; o < k; ++o)
            if (o != chosen[0]) others.push_back(o);
          for (size_t i = 0; i + 1 < others.size(); ++i)  // partial Fisher-Yates
            std::swap(others[i], others[i + size_t(rng.uniform_int(int64_t(others.size() - i)))]);
          others.resize(std::min(others.size(), size_t(options_.k_grad)));
          chosen = others;
        }
        auto& flags = c.grad_ops[size_t(e)];
        std::fill(flags.begin(), flags.end(), 0);
        for (int o : chosen) flags[size_t(o)] = 1;
      }
    }
    if (options_.sample_pairs) {
      for (int j = 0; j < space_.nodes; ++j) {
        size_t pairs = space_.pairs(j).size();
        c.grad_pair[size_t(j)] = pairs > 1 ? int(rng.uniform_int(int64_t(pairs))) : -1;
      }
    }
  }
  return s;
}

}  // namespace onnas::nas
