// Labelled images, as every sampler reads them.
//
// ImageSet is the one interface: N images of C x H x W bytes (every format read here
// stores 8-bit pixels) with labels, and a per-channel normalization applied when an
// image is converted to float for a batch. Two kinds of backend implement it:
//   - Dataset: everything in memory, in the stored type (uint8: a quarter of a float copy);
//   - streamed sets (data/streaming.h): images read from the file on demand, with a
//     small bounded buffer, so memory does not grow with N.
// The samplers (BatchSampler, EpisodeSampler) take either. The splits and statistics
// work on index lists, so a 60,000-image set is never copied just to be split.
//
//   Dataset d = load_fashion_mnist(kFashionMnistDir, Split::train);
//   TrainValSplit s = split_train_val(d, 0.1, /*seed=*/1, SplitMode::stratified);
//   ChannelStats stats = channel_stats(d, s.train);   // measured on the training part only
//   normalize(d, stats);                              // recorded; applied per image when read
//   std::vector<float> x(d.image_elems());
//   std::vector<uint8_t> scratch(d.image_elems());
//   d.read_image(17, x.data(), scratch.data());       // C*H*W floats: (p / 255 - mean[c]) / std[c]
//   d.bytes();                                        // what the set holds in memory
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/shape.h"

namespace onnas::data {

struct ChannelStats {
  std::vector<float> mean;  // per channel
  std::vector<float> std;   // per channel, population standard deviation
};

// The float of each stored byte value, p * (1 / 255) in float: what the loaders have
// always produced, computed once at compile time so that every path (batches,
// statistics, tests) uses the same bits.
inline constexpr std::array<float, 256> kByteToUnit = [] {
  std::array<float, 256> t{};
  for (int v = 0; v < 256; ++v) t[size_t(v)] = float(v) * (1.0f / 255.0f);
  return t;
}();

class ImageSet {
 public:
  // Set when the set is made; the samplers read them.
  int64_t N = 0, C = 0, H = 0, W = 0;
  int32_t num_classes = 0;
  std::string source;  // where it came from, for messages

  virtual ~ImageSet() = default;

  int64_t image_elems() const { return C * H * W; }
  Shape image_shape() const { return Shape{C, H, W}; }

  virtual int32_t label(int64_t i) const = 0;
  // The stored pixels of image i (C*H*W bytes, CHW): a pointer into the set's memory,
  // or `scratch` (image_elems() bytes, the caller's) filled from the file.
  virtual const uint8_t* raw_image(int64_t i, uint8_t* scratch) const = 0;
  // Bytes the set holds in memory: pixels, labels, per-image index vectors, buffers and
  // caches (not the samplers' index lists: BatchSampler::bytes, EpisodeSampler::bytes).
  virtual size_t bytes() const = 0;
  // One line: what the set is, where its images live, and bytes().
  virtual std::string describe() const = 0;
  // Throws if dimensions (and, where the set holds them, sizes and labels) are inconsistent.
  virtual void check() const;
  // labels of images first .. first + out.size() - 1 (streamed sets read them in one go).
  virtual void read_labels(int64_t first, std::span<int32_t> out) const;

  // Image i as floats into out[C*H*W]: kByteToUnit[p], then (x - mean[c]) * (1 / std[c])
  // when a normalization is set. `scratch` as for raw_image.
  void read_image(int64_t i, float* out, uint8_t* scratch) const;

  // The normalization read_image applies from now on; empty stats: none.
  void set_normalization(const ChannelStats& stats);
  const ChannelStats& normalization() const { return norm_; }

  // Indices of each class's images, ascending: by_class[c] lists the images labelled c.
  std::vector<std::vector<int64_t>> indices_by_class() const;
  std::vector<int64_t> class_counts() const;

 protected:
  ImageSet() = default;
  ImageSet(const ImageSet&) = default;
  ImageSet& operator=(const ImageSet&) = default;
  ImageSet(ImageSet&&) = default;
  ImageSet& operator=(ImageSet&&) = default;

 private:
  ChannelStats norm_;
  std::vector<float> table_;  // C x 256: the normalized float of each byte value per channel
};

// Every image in memory in its stored type.
class Dataset final : public ImageSet {
 public:
  std::vector<uint8_t> pixels;  // N*C*H*W, the stored bytes (0..255 for 0..1)
  std::vector<int32_t> labels;  // N, each in [0, num_classes)

  const uint8_t* pixels_of(int64_t i) const { return pixels.data() + i * image_elems(); }
  uint8_t* pixels_of(int64_t i) { return pixels.data() + i * image_elems(); }

  int32_t label(int64_t i) const override { return labels[size_t(i)]; }
  const uint8_t* raw_image(int64_t i, uint8_t*) const override { return pixels_of(i); }
  size_t bytes() const override;
  std::string describe() const override;
  void check() const override;
  void read_labels(int64_t first, std::span<int32_t> out) const override;
};

// A Dataset holding only `indices` of `d`, in that order (labels, num_classes and
// normalization kept). From a streamed set it reads those images into memory.
Dataset subset(const ImageSet& d, std::span<const int64_t> indices);

enum class SplitMode {
  shuffle,     // a plain seeded shuffle, then the first part is validation
  stratified,  // each class split separately, so both parts keep the class proportions
};

struct TrainValSplit {
  std::vector<int64_t> train;  // ascending
  std::vector<int64_t> val;    // ascending
};

// Holds out round(val_fraction * n) images (per class when stratified) for validation.
TrainValSplit split_train_val(const ImageSet& d, double val_fraction, uint64_t seed,
                              SplitMode mode = SplitMode::stratified);

// Mean and std per channel of the pixels scaled to [0, 1] (kByteToUnit; any
// normalization set is not applied) over `indices` (all images when empty), in double.
ChannelStats channel_stats(const ImageSet& d, std::span<const int64_t> indices = {});
// Sets the normalization applied when images are read: x = (x - mean[c]) / std[c].
// No pass over the data. Throws for a channel count that differs or a std that is not
// positive.
void normalize(ImageSet& d, const ChannelStats& stats);

// "1.5 MiB", for the describe() lines.
std::string format_data_bytes(double bytes);

}  // namespace onnas::data
