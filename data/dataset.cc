#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "runtime/error.h"
#include "runtime/rng.h"

namespace onnas::data {

namespace {
constexpr int64_t kLabelChunk = 4096;  // labels read per call when walking a whole set
}  // namespace

std::string format_data_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) bytes /= 1024.0, ++u;
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

void ImageSet::check() const {
  if (N < 0 || C <= 0 || H <= 0 || W <= 0)
    fail("dataset '{}': bad dimensions N={} C={} H={} W={}", source, N, C, H, W);
  if (num_classes < 0) fail("dataset '{}': {} classes", source, num_classes);
}

void ImageSet::read_labels(int64_t first, std::span<int32_t> out) const {
  for (size_t k = 0; k < out.size(); ++k) out[k] = label(first + int64_t(k));
}

void ImageSet::read_image(int64_t i, float* out, uint8_t* scratch) const {
  const uint8_t* px = raw_image(i, scratch);
  const int64_t plane = H * W;
  if (table_.empty()) {
    for (int64_t p = 0; p < C * plane; ++p) out[p] = kByteToUnit[px[p]];
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const float* t = table_.data() + c * 256;
    const uint8_t* src = px + c * plane;
    float* dst = out + c * plane;
    for (int64_t p = 0; p < plane; ++p) dst[p] = t[src[p]];
  }
}

void ImageSet::set_normalization(const ChannelStats& stats) {
  if (stats.mean.empty() && stats.std.empty()) {
    norm_ = {};
    table_.clear();
    return;
  }
  if (int64_t(stats.mean.size()) != C || int64_t(stats.std.size()) != C)
    fail("dataset '{}': statistics for {} channels, the images have {}", source, stats.mean.size(), C);
  for (int64_t c = 0; c < C; ++c)
    if (!(stats.std[size_t(c)] > 0.0f))
      fail("dataset '{}': channel {} has standard deviation {}, cannot normalize", source, c, stats.std[size_t(c)]);
  norm_ = stats;
  // The arithmetic of the in-place pass this replaces, (x - mean) * (1 / std) in float,
  // done once per byte value: the same bits for every pixel.
  table_.resize(size_t(C) * 256);
  for (int64_t c = 0; c < C; ++c) {
    const float mean = stats.mean[size_t(c)], inv = 1.0f / stats.std[size_t(c)];
    for (int v = 0; v < 256; ++v) table_[size_t(c * 256 + v)] = (kByteToUnit[size_t(v)] - mean) * inv;
  }
}

std::vector<std::vector<int64_t>> ImageSet::indices_by_class() const {
  std::vector<std::vector<int64_t>> by_class(size_t(std::max(num_classes, 0)));
  std::vector<int32_t> chunk(size_t(std::min<int64_t>(N, kLabelChunk)));
  for (int64_t first = 0; first < N; first += kLabelChunk) {
    const int64_t n = std::min(kLabelChunk, N - first);
    read_labels(first, std::span<int32_t>(chunk.data(), size_t(n)));
    for (int64_t k = 0; k < n; ++k) by_class[size_t(chunk[size_t(k)])].push_back(first + k);
  }
  return by_class;
}

std::vector<int64_t> ImageSet::class_counts() const {
  std::vector<int64_t> counts(size_t(std::max(num_classes, 0)), 0);
  std::vector<int32_t> chunk(size_t(std::min<int64_t>(N, kLabelChunk)));
  for (int64_t first = 0; first < N; first += kLabelChunk) {
    const int64_t n = std::min(kLabelChunk, N - first);
    read_labels(first, std::span<int32_t>(chunk.data(), size_t(n)));
    for (int64_t k = 0; k < n; ++k) counts[size_t(chunk[size_t(k)])] += 1;
  }
  return counts;
}

size_t Dataset::bytes() const { return pixels.capacity() * sizeof(uint8_t) + labels.capacity() * sizeof(int32_t); }

std::string Dataset::describe() const {
  return fmt::format("{}: {} images of {}x{}x{} (uint8) in memory, {}", source, N, C, H, W,
                     format_data_bytes(double(bytes())));
}

void Dataset::check() const {
  ImageSet::check();
  if (int64_t(pixels.size()) != N * image_elems())
    fail("dataset '{}': holds {} pixel bytes, expected N*C*H*W = {}", source, pixels.size(), N * image_elems());
  if (int64_t(labels.size()) != N) fail("dataset '{}': holds {} labels for {} images", source, labels.size(), N);
  for (int64_t i = 0; i < N; ++i)
    if (labels[size_t(i)] < 0 || labels[size_t(i)] >= num_classes)
      fail("dataset '{}': image {} has label {}, outside [0, {})", source, i, labels[size_t(i)], num_classes);
}

void Dataset::read_labels(int64_t first, std::span<int32_t> out) const {
  std::copy_n(labels.begin() + first, out.size(), out.begin());
}

Dataset subset(const ImageSet& d, std::span<const int64_t> indices) {
  Dataset out;
  out.N = int64_t(indices.size());
  out.C = d.C;
  out.H = d.H;
  out.W = d.W;
  out.num_classes = d.num_classes;
  out.source = d.source;
  const int64_t elems = d.image_elems();
  out.pixels.resize(size_t(out.N * elems));
  out.labels.resize(size_t(out.N));
  std::vector<uint8_t> scratch(static_cast<size_t>(elems));
  for (size_t k = 0; k < indices.size(); ++k) {
    int64_t i = indices[k];
    if (i < 0 || i >= d.N) fail("dataset '{}': subset index {} outside [0, {})", d.source, i, d.N);
    std::memcpy(out.pixels_of(int64_t(k)), d.raw_image(i, scratch.data()), size_t(elems));
    out.labels[k] = d.label(i);
  }
  out.set_normalization(d.normalization());
  return out;
}

namespace {

// Fisher-Yates with our Rng, so a seed gives the same order on every platform.
void shuffle(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.uniform_int(int64_t(i)))]);
}

}  // namespace

TrainValSplit split_train_val(const ImageSet& d, double val_fraction, uint64_t seed, SplitMode mode) {
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

ChannelStats channel_stats(const ImageSet& d, std::span<const int64_t> indices) {
  const int64_t hw = d.H * d.W;
  std::vector<double> sum(size_t(d.C), 0.0), sum_sq(size_t(d.C), 0.0);
  std::vector<uint8_t> scratch(static_cast<size_t>(d.image_elems()));
  int64_t count = 0;
  auto add = [&](int64_t i) {
    const uint8_t* img = d.raw_image(i, scratch.data());
    for (int64_t c = 0; c < d.C; ++c) {
      double s = 0, s2 = 0;
      for (int64_t p = 0; p < hw; ++p) {
        double v = kByteToUnit[img[c * hw + p]];
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

void normalize(ImageSet& d, const ChannelStats& stats) {
  if (stats.mean.empty() && stats.std.empty())
    fail("dataset '{}': no statistics to normalize with (statistics for 0 channels, the images have {})", d.source, d.C);
  d.set_normalization(stats);
}

}  // namespace onnas::data
