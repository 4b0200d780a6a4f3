// BatchSampler: shuffled mini-batches of an ImageSet (in memory or streamed) for
// training, written into buffers the caller owns (typically tensors bound to the graph's
// inputs), so drawing a batch allocates nothing. Images are converted to float (and
// normalized, ImageSet::read_image) as they are copied; optional augmentation (random
// crop with zero padding, horizontal flip) is applied while copying.
//
//   BatchSampler batches(train, split.train, {.batch_size = 64, .augment = {.crop_padding = 4, .horizontal_flip = true}}, seed);
//   Tensor x(x_mem, Shape{64, 1, 28, 28}), y(y_mem, Shape{64}, DType::i32);
//   for (int64_t b = 0; b < batches.batches_per_epoch(); ++b) {
//     int64_t rows = batches.next(x, y);    // 64, or fewer for the last batch (drop_last = false)
//     ...
//   }
//
// Epoch e's order is a function of (seed, e) only; the random crops and flips drawn
// during an epoch come from the same per-epoch stream, so a run replays bit for bit.
// Padding pixels are 0, which after normalize() is the channel mean.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace onnas::data {

struct Augmentation {
  int64_t crop_padding = 0;      // pad by this many zero pixels, then crop H x W at a random offset
  bool horizontal_flip = false;  // mirror left-right with probability 1/2
};

struct BatchOptions {
  int64_t batch_size = 64;
  bool shuffle = true;     // false: dataset order, every epoch
  bool drop_last = false;  // true: skip the last, smaller batch of an epoch
  Augmentation augment = {};
};

class BatchSampler {
 public:
  // Draws from `indices` of `data` (all images when empty). `data` must outlive the sampler.
  BatchSampler(const ImageSet& data, std::vector<int64_t> indices, BatchOptions options, uint64_t seed);

  int64_t batches_per_epoch() const;
  int64_t samples() const { return int64_t(indices_.size()); }
  int64_t epoch() const { return epoch_; }  // epoch of the last batch drawn; -1 before the first
  // Bytes the sampler holds: its index lists (they scale with the images sampled) and
  // one image of scratch.
  size_t bytes() const;

  // Fills x [B, C, H, W] (f32) and y [B] (i32), B = batch_size, with the next batch;
  // after an epoch's last batch the next call starts a new, reshuffled epoch. Returns the
  // rows filled; rows past that (last batch, drop_last = false) are zero with label -1,
  // so a consumer that ignores the count fails loudly rather than learning from them.
  int64_t next(Tensor x, Tensor y);

 private:
  void start_epoch();
  void fill_row(int64_t src, float* dst);

  const ImageSet& data_;
  std::vector<int64_t> indices_;  // the sampled subset
  std::vector<int64_t> order_;    // this epoch's order
  BatchOptions options_;
  Rng base_;
  Rng epoch_rng_;
  int64_t epoch_ = -1;
  int64_t cursor_ = 0;  // next position in order_
  std::vector<uint8_t> raw_;    // one image's bytes, when the set reads them from a file
  std::vector<float> row_;      // one converted image, when augmenting
};

}  // namespace onnas::data
