#include "data/batch_sampler.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/error.h"

namespace onnas::data {

BatchSampler::BatchSampler(const ImageSet& data, std::vector<int64_t> indices, BatchOptions options, uint64_t seed)
    : data_(data), indices_(std::move(indices)), options_(options), base_(seed), epoch_rng_(seed) {
  data_.check();
  if (indices_.empty()) {
    indices_.resize(size_t(data_.N));
    std::iota(indices_.begin(), indices_.end(), 0);
  }
  for (int64_t i : indices_)
    if (i < 0 || i >= data_.N) fail("BatchSampler over '{}': index {} outside [0, {})", data_.source, i, data_.N);
  if (options_.batch_size < 1) fail("BatchSampler over '{}': batch size {} must be positive", data_.source, options_.batch_size);
  if (indices_.empty()) fail("BatchSampler over '{}': no images to sample", data_.source);
  if (options_.drop_last && samples() < options_.batch_size)
    fail("BatchSampler over '{}': {} images make no full batch of {} with drop_last", data_.source, samples(),
         options_.batch_size);
  if (options_.augment.crop_padding < 0 || options_.augment.crop_padding > std::min(data_.H, data_.W))
    fail("BatchSampler over '{}': crop padding {} is outside [0, {}]", data_.source, options_.augment.crop_padding,
         std::min(data_.H, data_.W));
  order_ = indices_;
  raw_.resize(size_t(data_.image_elems()));
  if (options_.augment.crop_padding > 0 || options_.augment.horizontal_flip) row_.resize(size_t(data_.image_elems()));
}

size_t BatchSampler::bytes() const {
  return (indices_.capacity() + order_.capacity()) * sizeof(int64_t) + raw_.capacity() + row_.capacity() * sizeof(float);
}

int64_t BatchSampler::batches_per_epoch() const {
  int64_t b = options_.batch_size;
  return options_.drop_last ? samples() / b : (samples() + b - 1) / b;
}

void BatchSampler::start_epoch() {
  ++epoch_;
  cursor_ = 0;
  epoch_rng_ = base_.fork(uint64_t(epoch_));
  order_ = indices_;
  if (options_.shuffle)
    for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[size_t(epoch_rng_.uniform_int(int64_t(i)))]);
}

void BatchSampler::fill_row(int64_t src, float* dst) {
  const int64_t C = data_.C, H = data_.H, W = data_.W;
  const Augmentation& a = options_.augment;
  if (a.crop_padding == 0 && !a.horizontal_flip) {
    data_.read_image(src, dst, raw_.data());
    return;
  }
  data_.read_image(src, row_.data(), raw_.data());
  const float* img = row_.data();
  const int64_t p = a.crop_padding;
  // Offsets into the padded (H+2p) x (W+2p) image; dy = dx = p is the centre.
  const int64_t dy = p ? epoch_rng_.uniform_int(2 * p + 1) - p : 0;
  const int64_t dx = p ? epoch_rng_.uniform_int(2 * p + 1) - p : 0;
  const bool flip = a.horizontal_flip && epoch_rng_.uniform() < 0.5f;
  for (int64_t c = 0; c < C; ++c) {
    const float* plane = img + c * H * W;
    float* out = dst + c * H * W;
    for (int64_t y = 0; y < H; ++y) {
      const int64_t sy = y + dy;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t sx = (flip ? W - 1 - x : x) + dx;
        out[y * W + x] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? plane[sy * W + sx] : 0.0f;
      }
    }
  }
}

int64_t BatchSampler::next(Tensor x, Tensor y) {
  const int64_t B = options_.batch_size;
  const Shape want_x{B, data_.C, data_.H, data_.W};
  if (x.dtype() != DType::f32 || x.shape() != want_x || x.data() == nullptr)
    fail("BatchSampler over '{}': x is {} {}, expected f32 {}", data_.source, dtype_name(x.dtype()), x.shape().str(),
         want_x.str());
  if (y.dtype() != DType::i32 || y.shape() != Shape{B} || y.data() == nullptr)
    fail("BatchSampler over '{}': y is {} {}, expected i32 [{}]", data_.source, dtype_name(y.dtype()), y.shape().str(), B);

  const int64_t remaining = samples() - cursor_;
  if (epoch_ < 0 || remaining == 0 || (options_.drop_last && remaining < B)) start_epoch();
  const int64_t rows = std::min(B, samples() - cursor_);
  const int64_t elems = data_.image_elems();
  float* xs = x.f32();
  int32_t* ys = y.i32();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t src = order_[size_t(cursor_ + r)];
    fill_row(src, xs + r * elems);
    ys[r] = data_.label(src);
  }
  if (rows < B) {
    std::memset(xs + rows * elems, 0, size_t((B - rows) * elems) * sizeof(float));
    for (int64_t r = rows; r < B; ++r) ys[r] = -1;
  }
  cursor_ += rows;
  return rows;
}

}  // namespace onnas::data
