#include "nas/sampler.h"

#include <algorithm>
#include <cstring>
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
  if (options_.history < 1) fail("sampler history must be at least 1 (got {})", options_.history);
  entries_ = size_t(space.num_edges()) * size_t(space.num_ops());
  for (int r = 0; r < 2; ++r) {
    before_[r].assign(entries_, 0.0f);
    ring_[r].assign(entries_ * size_t(options_.history), 0.0f);
    count_[r].assign(entries_, 0);
    next_[r].assign(entries_, 0);
  }
  score_.resize(entries_);
  order_.resize(size_t(space.num_ops()));
  others_.reserve(size_t(space.num_ops()));
}

namespace {
const char* alpha_name(bool reduction) { return reduction ? "alpha.reduce" : "alpha.normal"; }
}  // namespace

void ArchSampler::before_update(const ParamStore& params) {
  for (int r = 0; r < 2; ++r) {
    const Tensor a = params.get(alpha_name(r == 1));
    std::memcpy(before_[r].data(), a.data(), entries_ * sizeof(float));
  }
}

void ArchSampler::after_update(const ParamStore& params, std::span<const uint8_t> trained_normal,
                               std::span<const uint8_t> trained_reduce) {
  const size_t h = size_t(options_.history);
  for (int r = 0; r < 2; ++r) {
    const std::span<const uint8_t> trained = r ? trained_reduce : trained_normal;
    const float* now = params.get(alpha_name(r == 1)).f32();
    for (size_t i = 0; i < entries_; ++i) {
      if (!trained.empty() && !trained[i]) continue;
      ring_[r][size_t(next_[r][i]) * entries_ + i] = now[i] - before_[r][i];
      next_[r][i] = int((size_t(next_[r][i]) + 1) % h);
      count_[r][i] = std::min(count_[r][i] + 1, int(h));
    }
  }
}

void ArchSampler::score_into(const ParamStore& params, bool reduction, int64_t remaining,
                             std::vector<double>& score) const {
  const int r = reduction ? 1 : 0;
  const float* a = params.get(alpha_name(reduction)).f32();
  const size_t h = size_t(options_.history);
  for (size_t i = 0; i < entries_; ++i) {
    score[i] = a[i];
    if (count_[r][i] < int(h)) continue;
    double mean = 0;
    for (size_t slot = 0; slot < h; ++slot) mean += ring_[r][slot * entries_ + i];
    score[i] += double(remaining) * mean / double(h);
  }
}

std::vector<double> ArchSampler::expected_alpha(const ParamStore& params, bool reduction,
                                                int64_t remaining_steps) const {
  std::vector<double> score(entries_);
  score_into(params, reduction, remaining_steps, score);
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
  draw(params, step, total_steps, s);
  return s;
}

void ArchSampler::draw(const ParamStore& params, int64_t step, int64_t total_steps, Sample& s) {
  Rng rng = rng_.fork(uint64_t(step));
  const int k = space_.num_ops();
  const int64_t remaining = std::max<int64_t>(0, total_steps - step);
  for (int r = 0; r < 2; ++r) {
    CellSample& c = r ? s.reduce : s.normal;
    if (options_.sample_ops) {
      score_into(params, r == 1, remaining, score_);
      for (int e = 0; e < space_.num_edges(); ++e) {
        const double* scores = score_.data() + size_t(e) * size_t(k);
        // The ranking, stable on ties, as top_ops (an insertion sort: std::stable_sort
        // may allocate a buffer, and k is small).
        std::iota(order_.begin(), order_.end(), 0);
        for (size_t i = 1; i < order_.size(); ++i)
          for (size_t j = i; j > 0 && scores[order_[j]] > scores[order_[j - 1]]; --j) std::swap(order_[j], order_[j - 1]);
        auto& flags = c.grad_ops[size_t(e)];
        std::fill(flags.begin(), flags.end(), 0);
        const size_t take = size_t(std::min(k, options_.k_grad));
        if (rng.uniform_double() < options_.explore_prob) {
          // Explore: k_grad ops uniformly among all but the ranking's top-1.
          others_.clear();
          for (int o = 0; o < k; ++o)
            if (o != order_[0]) others_.push_back(o);
          for (size_t i = 0; i + 1 < others_.size(); ++i)  // partial Fisher-Yates
            std::swap(others_[i], others_[i + size_t(rng.uniform_int(int64_t(others_.size() - i)))]);
          for (size_t i = 0; i < std::min(others_.size(), take); ++i) flags[size_t(others_[i])] = 1;
        } else {
          for (size_t i = 0; i < take; ++i) flags[size_t(order_[i])] = 1;
        }
      }
    }
    if (options_.sample_pairs) {
      for (int j = 0; j < space_.nodes; ++j) {
        const int64_t pairs = int64_t(2 + j) * int64_t(1 + j) / 2;
        c.grad_pair[size_t(j)] = pairs > 1 ? int(rng.uniform_int(pairs)) : -1;
      }
    }
  }
}

std::vector<float> ArchSampler::history_rows(bool reduction) const {
  const int r = reduction ? 1 : 0;
  const size_t h = size_t(options_.history);
  std::vector<float> rows(h * entries_, 0.0f);
  for (size_t i = 0; i < entries_; ++i) {
    const size_t n = size_t(count_[r][i]);
    // Oldest first: the recorded updates end just before next_[i].
    for (size_t t = 0; t < n; ++t) {
      const size_t slot = (size_t(next_[r][i]) + h - n + t) % h;
      rows[t * entries_ + i] = ring_[r][slot * entries_ + i];
    }
  }
  return rows;
}

std::vector<float> ArchSampler::history_counts(bool reduction) const {
  const std::vector<int>& c = count_[reduction ? 1 : 0];
  return std::vector<float>(c.begin(), c.end());
}

void ArchSampler::set_history(bool reduction, std::span<const float> rows, std::span<const float> counts) {
  const size_t h = size_t(options_.history);
  if (rows.size() != h * entries_ || counts.size() != entries_)
    fail("sampler history: {} values and {} counts, this space needs {} x {} and {}", rows.size(), counts.size(), h,
         entries_, entries_);
  for (float c : counts)
    if (!(c >= 0 && c <= float(h) && c == float(int(c))))
      fail("sampler history: a count of {} is not a whole number in [0, {}]", c, h);
  const int r = reduction ? 1 : 0;
  for (size_t i = 0; i < entries_; ++i) {
    const int n = int(counts[i]);
    count_[r][i] = n;
    next_[r][i] = int(size_t(n) % h);
    for (size_t t = 0; t < size_t(n); ++t) ring_[r][t * entries_ + i] = rows[t * entries_ + i];
  }
}

}  // namespace onnas::nas
