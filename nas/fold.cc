#include "nas/fold.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/error.h"

namespace onnas::nas {

const char* fold_weighting_name(FoldWeighting w) { return w == FoldWeighting::softmax ? "softmax" : "mean"; }

FoldAverage::FoldAverage(size_t size, FoldWeighting weighting)
    : weighting_(weighting), max_(weighting == FoldWeighting::softmax ? size : 0), sum_(size), weighted_(size) {
  reset();
}

void FoldAverage::reset() {
  std::fill(max_.begin(), max_.end(), -std::numeric_limits<float>::infinity());
  std::fill(sum_.begin(), sum_.end(), 0.0);
  std::fill(weighted_.begin(), weighted_.end(), 0.0);
}

void FoldAverage::add(size_t i, float d) {
  if (weighting_ == FoldWeighting::mean) {
    sum_[i] += 1.0;
    weighted_[i] += double(d);
    return;
  }
  // Online softmax: keep sums relative to the largest difference seen so far.
  if (d > max_[i]) {
    const double rescale = sum_[i] > 0 ? std::exp(double(max_[i]) - double(d)) : 0.0;
    sum_[i] = sum_[i] * rescale + 1.0;
    weighted_[i] = weighted_[i] * rescale + double(d);
    max_[i] = d;
  } else {
    const double w = std::exp(double(d) - double(max_[i]));
    sum_[i] += w;
    weighted_[i] += w * double(d);
  }
}

void FoldAverage::add(size_t offset, std::span<const float> d) {
  ONNAS_CHECK(offset + d.size() <= size(), "fold: difference [{}, {}) beyond {} elements", offset, offset + d.size(),
              size());
  for (size_t k = 0; k < d.size(); ++k) add(offset + k, d[k]);
}

void FoldAverage::merge(const FoldAverage& other) {
  ONNAS_CHECK(other.size() == size() && other.weighting_ == weighting_, "fold: merging unlike accumulators");
  for (size_t i = 0; i < size(); ++i) {
    if (other.sum_[i] == 0) continue;
    if (weighting_ == FoldWeighting::mean || sum_[i] == 0) {
      if (weighting_ == FoldWeighting::softmax) max_[i] = other.max_[i];
      sum_[i] += other.sum_[i];
      weighted_[i] += other.weighted_[i];
      continue;
    }
    const float m = std::max(max_[i], other.max_[i]);
    const double a = std::exp(double(max_[i]) - double(m)), b = std::exp(double(other.max_[i]) - double(m));
    sum_[i] = sum_[i] * a + other.sum_[i] * b;
    weighted_[i] = weighted_[i] * a + other.weighted_[i] * b;
    max_[i] = m;
  }
}

}  // namespace onnas::nas
