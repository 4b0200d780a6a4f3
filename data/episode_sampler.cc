#include "data/episode_sampler.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/error.h"

namespace onnas::data {

EpisodeSampler::EpisodeSampler(const Dataset& data, std::vector<int32_t> classes, EpisodeShape shape, uint64_t seed)
    : data_(&data), classes_(std::move(classes)), shape_(shape), C_(data.C), H_(data.H), W_(data.W), source_(data.source),
      rng_(seed) {
  data.check();
  std::vector<int64_t> sizes = data.class_counts();
  init(data.num_classes, sizes);
  for (auto& pool : pools_) pool.clear();
  for (int64_t i = 0; i < data.N; ++i) pools_[size_t(data.label(i))].push_back(i);
}

EpisodeSampler::EpisodeSampler(const ImageFolderIndex& tree, ImageLoadOptions options, std::vector<int32_t> classes,
                               EpisodeShape shape, uint64_t seed)
    : tree_(&tree), load_options_(options), classes_(std::move(classes)), shape_(shape), C_(options.channels),
      H_(options.height), W_(options.width), source_(tree.root), rng_(seed) {
  std::vector<int64_t> sizes;
  for (const auto& f : tree.files) sizes.push_back(int64_t(f.size()));
  init(tree.num_classes(), sizes);
  for (size_t c = 0; c < pools_.size(); ++c) {
    pools_[c].resize(size_t(sizes[c]));
    std::iota(pools_[c].begin(), pools_[c].end(), 0);
  }
}

void EpisodeSampler::init(int32_t num_classes, const std::vector<int64_t>& class_sizes) {
  const int64_t n = shape_.n_way, k = shape_.k_shot, q = shape_.q_query;
  if (n < 1 || k < 1 || q < 0) fail("episodes over '{}': {}-way {}-shot with {} queries is not an episode", source_, n, k, q);
  if (classes_.empty())
    for (int32_t c = 0; c < num_classes; ++c) classes_.push_back(c);
  std::vector<bool> seen(size_t(num_classes), false);
  for (int32_t c : classes_) {
    if (c < 0 || c >= num_classes) fail("episodes over '{}': class {} is outside [0, {})", source_, c, num_classes);
    if (seen[size_t(c)]) fail("episodes over '{}': class {} is listed twice in the class split", source_, c);
    seen[size_t(c)] = true;
    if (class_sizes[size_t(c)] < k + q)
      fail("episodes over '{}': class {} has {} images, fewer than the {} support + {} query an episode needs", source_, c,
           class_sizes[size_t(c)], k, q);
  }
  if (int64_t(classes_.size()) < n)
    fail("episodes over '{}': {}-way episodes need {} classes, the class split has {}", source_, n, n, classes_.size());
  pools_.assign(size_t(num_classes), {});
  episode_.classes.resize(size_t(n));
  episode_.support.resize(size_t(n * k));
  episode_.query.resize(size_t(n * q));
}

const Episode& EpisodeSampler::next() {
  const int64_t n = shape_.n_way, k = shape_.k_shot, q = shape_.q_query;
  // Partial Fisher-Yates: the first n entries become a uniform draw without
  // replacement, whatever order earlier episodes left the list in.
  for (int64_t j = 0; j < n; ++j) {
    int64_t pick = j + rng_.uniform_int(int64_t(classes_.size()) - j);
    std::swap(classes_[size_t(j)], classes_[size_t(pick)]);
    episode_.classes[size_t(j)] = classes_[size_t(j)];
  }
  if (shape_.sorted_labels) std::sort(episode_.classes.begin(), episode_.classes.end());
  for (int64_t j = 0; j < n; ++j) {
    std::vector<int64_t>& pool = pools_[size_t(episode_.classes[size_t(j)])];
    // The first k+q items of the partially shuffled pool: support and query can never share an image.
    for (int64_t i = 0; i < k + q; ++i) {
      int64_t pick = i + rng_.uniform_int(int64_t(pool.size()) - i);
      std::swap(pool[size_t(i)], pool[size_t(pick)]);
    }
    for (int64_t i = 0; i < k; ++i) episode_.support[size_t(j * k + i)] = pool[size_t(i)];
    for (int64_t i = 0; i < q; ++i) episode_.query[size_t(j * q + i)] = pool[size_t(k + i)];
  }
  return episode_;
}

void EpisodeSampler::copy_image(int32_t cls, int64_t item, float* out) {
  if (data_) {
    std::memcpy(out, data_->image(item), size_t(data_->image_elems()) * sizeof(float));
  } else {
    load_image(tree_->files[size_t(cls)][size_t(item)], load_options_, out);
  }
}

void EpisodeSampler::fill(const std::vector<int64_t>& items, int64_t per_class, Tensor x, Tensor y, const char* what) {
  const int64_t rows = shape_.n_way * per_class;
  const Shape want{rows, C_, H_, W_};
  if (x.dtype() != DType::f32 || x.shape() != want || (rows > 0 && x.data() == nullptr))
    fail("episodes over '{}': {}_x is {} {}, expected f32 {}", source_, what, dtype_name(x.dtype()), x.shape().str(), want.str());
  if (y.dtype() != DType::i32 || y.shape() != Shape{rows} || (rows > 0 && y.data() == nullptr))
    fail("episodes over '{}': {}_y is {} {}, expected i32 [{}]", source_, what, dtype_name(y.dtype()), y.shape().str(), rows);
  const int64_t elems = C_ * H_ * W_;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = r / per_class;
    copy_image(episode_.classes[size_t(j)], items[size_t(r)], static_cast<float*>(x.data()) + r * elems);
    static_cast<int32_t*>(y.data())[r] = int32_t(j);
  }
}

const Episode& EpisodeSampler::next(Tensor support_x, Tensor support_y, Tensor query_x, Tensor query_y) {
  next();
  fill(episode_.support, shape_.k_shot, support_x, support_y, "support");
  fill(episode_.query, shape_.q_query, query_x, query_y, "query");
  return episode_;
}

}  // namespace onnas::data
