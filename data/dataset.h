// Dataset: a set of labelled images held in memory as float NCHW, the one form every
// loader (IDX, CIFAR-10, image folders) produces and every sampler consumes. Also the
// splits and the per-channel normalization, which work on index lists so that a
// 60,000-image set is never copied just to be split.
//
//   Dataset d = load_fashion_mnist(kFashionMnistDir, Split::train);
//   TrainValSplit s = split_train_val(d, 0.1, /*seed=*/1, SplitMode::stratified);
//   ChannelStats stats = channel_stats(d, s.train);   // measured on the training part only
//   normalize(d, stats);                              // applied to all of it, in place
//   const float* img = d.image(17);                   // C*H*W floats
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/shape.h"

namespace onnas::data {

struct Dataset {
  std::vector<float> images;    // N*C*H*W, values in [0, 1] as loaded, normalized later
  std::vector<int32_t> labels;  // N, each in [0, num_classes)
  int64_t N = 0, C = 0, H = 0, W = 0;
  int32_t num_classes = 0;
  std::string source;  // where it came from, for messages

  int64_t image_elems() const { return C * H * W; }
  Shape image_shape() const { return Shape{C, H, W}; }
  const float* image(int64_t i) const { return images.data() + i * image_elems(); }
  float* image(int64_t i) { return images.data() + i * image_elems(); }
  int32_t label(int64_t i) const { return labels[size_t(i)]; }

  // Throws if sizes and labels disagree with N, C, H, W, num_classes.
  void check() const;
  // Indices of each class's images, ascending: by_class[c] lists the images labelled c.
  std::vector<std::vector<int64_t>> indices_by_class() const;
  std::vector<int64_t> class_counts() const;
};

// A copy holding only `indices`, in that order (labels and num_classes kept).
Dataset subset(const Dataset& d, std::span<const int64_t> indices);

enum class SplitMode {
  shuffle,     // a plain seeded shuffle, then the first part is validation
  stratified,  // each class split separately, so both parts keep the class proportions
};

struct TrainValSplit {
  std::vector<int64_t> train;  // ascending
  std::vector<int64_t> val;    // ascending
};

// Holds out round(val_fraction * n) images (per class when stratified) for validation.
TrainValSplit split_train_val(const Dataset& d, double val_fraction, uint64_t seed, SplitMode mode = SplitMode::stratified);

struct ChannelStats {
  std::vector<float> mean;  // per channel
  std::vector<float> std;   // per channel, population standard deviation
};

// Mean and std per channel over `indices` (all images when empty), in double.
ChannelStats channel_stats(const Dataset& d, std::span<const int64_t> indices = {});
// x = (x - mean[c]) / std[c], in place. Throws for a channel whose std is 0.
void normalize(Dataset& d, const ChannelStats& stats);

}  // namespace onnas::data
