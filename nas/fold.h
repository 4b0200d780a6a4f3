// The per-element weighted average both folds of TFML use (ONNAS.md section 7): given
// differences d_1 .. d_T of the same tensor (task minus meta parameters, or cell minus
// meta cell), each element's average is
//
//   softmax: sum_t c_t d_t   with c_t = exp(d_t) / sum_t' exp(d_t')  (per element)
//   mean:    (1 / T) sum_t d_t
//
// accumulated one difference at a time (an online softmax: a running maximum, the sum
// of exp(d - max) and of exp(d - max) * d), so a meta-batch of T tasks needs three
// copies of the parameters, not T. Differences may cover part of the elements (a
// narrow cell covers only its slice of the meta cell); elements nobody covered
// average to 0.
//
//   FoldAverage avg(n, FoldWeighting::softmax);
//   for (task ...) avg.add(0, diff_of_task);          // spans of n floats, or pieces
//   float step_i = avg.average(i);
//   avg.merge(other_rank_avg);                         // same result as adding its terms
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace onnas::nas {

enum class FoldWeighting { softmax, mean };
const char* fold_weighting_name(FoldWeighting w);

class FoldAverage {
 public:
  FoldAverage(size_t size, FoldWeighting weighting);

  size_t size() const { return sum_.size(); }
  // The bytes an accumulator over `size` elements holds (two doubles per element, and a
  // float for the softmax weighting's running maximum); bytes(): this one's.
  static size_t bytes_for(size_t size, FoldWeighting weighting) {
    return size * (2 * sizeof(double) + (weighting == FoldWeighting::softmax ? sizeof(float) : 0));
  }
  size_t bytes() const { return bytes_for(size(), weighting_); }
  FoldWeighting weighting() const { return weighting_; }
  void reset();
  // Adds one difference for elements [offset, offset + d.size()).
  void add(size_t offset, std::span<const float> d);
  // Adds one difference for the single element i.
  void add(size_t i, float d);
  // Adds the terms another accumulator over the same elements has collected.
  void merge(const FoldAverage& other);
  // The weighted average of element i (0 if nothing covered it).
  float average(size_t i) const { return sum_[i] > 0 ? float(weighted_[i] / sum_[i]) : 0.0f; }

  // The raw terms, for exchanging between processes: per element the running maximum
  // (softmax only), the sum of weights and the weighted sum of differences.
  std::vector<float>& max_terms() { return max_; }
  std::vector<double>& sum_terms() { return sum_; }
  std::vector<double>& weighted_terms() { return weighted_; }

 private:
  FoldWeighting weighting_;
  std::vector<float> max_;
  std::vector<double> sum_, weighted_;
};

}  // namespace onnas::nas
