#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace onnas::data {

void Dataset::check() const {
  if (N < 0 || C <= 0 || H <= 0 || W <= 0)
    fail("dataset '{}': bad dimensions N={} C={} H={} W={}", source, N, C, H, W);
  if (int64_t(images.size()) != N * image_elems())
    fail("dataset '{}': holds {} floats, expected N*C*H*W = {}", source, images.size(), N * image_elems());
  if (int64_t(labels.size()) != N) fail("dataset '{}': holds {} labels for {} images", source, labels.size(), N);
  for (int64_t i = 0; i < N; ++i)
    if (labels[size_t(i)] < 0 || labels[size_t(i)] >= num_classes)
      fail("dataset '{}': image {} has label {}, outside [0, {})", source, i, labels[size_t(i)], num_classes);
}

std::vector<std::vector<int64_t>> Dataset::indices_by_class() const {
  std::vector<std::vector<int64_t>> by_class(size_t(std::max(num_classes, 0)));
  for (int64_t i = 0; i < N; ++i) by_class[size_t(labels[size_t(i)])].push_back(i);
  return by_class;
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(size_t(std::max(num_classes, 0)), 0);
  for (int32_t l : labels) counts[size_t(l)] += 1;
  return counts;
}

Dataset subset(const Dataset& d, std::span<const int64_t> indices) {
  Dataset out;
  out.N = int64_t(indices.size());
  out.C = d.C;
  out.H = d.H;
  out.W = d.W;
  out.num_classes = d.num_classes;
  out.source = d.source;
  const int64_t elems = d.image_elems();
  out.images.resize(size_t(out.N * elems));
  out.labels.resize(size_t(out.N));
  for (size_t k = 0; k < indices.size(); ++k) {
    int64_t i = indices[k];
    if (i < 0 || i >= d.N) fail("dataset '{}': subset index {} outside [0, {})", d.source, i, d.N);
    std::memcpy(out.image(int64_t(k)), d.image(i), size_t(elems) * sizeof(float));
    out.labels[k] = d.labels[size_t(i)];
  }
  return out;
}

namespace {

// Fisher-Yates with our Rng, so a seed gives the same order on every platform.
void shuffle(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.uniform_int(int64_t(i)))]);
}

}  // namespace

TrainValSplit split_train_val(const Dataset& d, double val_fraction, uint64_t seed, SplitMode mode) {
  if (!(val_fraction >= 0.0 && val_fraction <= 1.0))
    fail("dataset '{}': validation fraction {} is outside [0, 1]", d.source, val_fraction);
  Rng rng(seed);
  TrainValSplit split;
  auto take = [&](std::vector<int64_t> pool) {
    shuffle(pool, rng);
    size_t n_val = size_t(std::llround(val_fraction * double(pool.size())));
    split.val.insert(split.val.end(), pool.begin(), pool.begin() + n_val);
    split.train.insert(split.train.end(), pool.begin() + n_val, pool.end());
  };
  if (mode == SplitMode::stratified) {
    for (auto& cls : d.indices_by_class()) take(std::move(cls));
  } else {
    std::vector<int64_t> all(size_t(d.N));
    std::iota(all.begin(), all.end(), 0);
    take(std::move(all));
  }
  // Ascending order keeps memory access sequential; samplers shuffle on their own.
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.val.begin(), split.val.end());
  return split;
}

ChannelStats channel_stats(const Dataset& d, std::span<const int64_t> indices) {
  const int64_t hw = d.H * d.W;
  std::vector<double> sum(size_t(d.C), 0.0), sum_sq(size_t(d.C), 0.0);
  int64_t count = 0;
  auto add = [&](int64_t i) {
    const float* img = d.image(i);
    for (int64_t c = 0; c < d.C; ++c) {
      double s = 0, s2 = 0;
      for (int64_t p = 0; p < hw; ++p) {
        double v = img[c * hw + p];
        s += v;
        s2 += v * v;
      }
      sum[size_t(c)] += s;
      sum_sq[size_t(c)] += s2;
    }
    ++count;
  };
  if (indices.empty()) {
    for (int64_t i = 0; i < d.N; ++i) add(i);
  } else {
    for (int64_t i : indices) {
      if (i < 0 || i >= d.N) fail("dataset '{}': index {} outside [0, {})", d.source, i, d.N);
      add(i);
    }
  }
  if (count == 0) fail("dataset '{}': cannot compute channel statistics of no images", d.source);
  ChannelStats stats;
  const double n = double(count) * double(hw);
  for (int64_t c = 0; c < d.C; ++c) {
    double mean = sum[size_t(c)] / n;
    double var = std::max(0.0, sum_sq[size_t(c)] / n - mean * mean);
    stats.mean.push_back(float(mean));
    stats.std.push_back(float(std::sqrt(var)));
  }
  return stats;
}

void normalize(Dataset& d, const ChannelStats& stats) {
  if (int64_t(stats.mean.size()) != d.C || int64_t(stats.std.size()) != d.C)
    fail("dataset '{}': statistics for {} channels, the images have {}", d.source, stats.mean.size(), d.C);
  for (int64_t c = 0; c < d.C; ++c)
    if (!(stats.std[size_t(c)] > 0.0f))
      fail("dataset '{}': channel {} has standard deviation {}, cannot normalize", d.source, c, stats.std[size_t(c)]);
  const int64_t hw = d.H * d.W;
  for (int64_t i = 0; i < d.N; ++i) {
    float* img = d.image(i);
    for (int64_t c = 0; c < d.C; ++c) {
      const float mean = stats.mean[size_t(c)], inv = 1.0f / stats.std[size_t(c)];
      for (int64_t p = 0; p < hw; ++p) img[c * hw + p] = (img[c * hw + p] - mean) * inv;
    }
  }
}

}  // namespace onnas::data
