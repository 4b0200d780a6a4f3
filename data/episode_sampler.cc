#include "data/episode_sampler.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "data/streaming.h"
#include "runtime/error.h"

namespace onnas::data {

EpisodeSampler::EpisodeSampler(const ImageSet& data, std::vector<int32_t> classes, EpisodeShape shape, uint64_t seed)
    : data_(&data), classes_(std::move(classes)), shape_(shape), C_(data.C), H_(data.H), W_(data.W), source_(data.source),
      rng_(seed) {
  init();
}

EpisodeSampler::EpisodeSampler(const ImageSet& data, const std::vector<std::vector<int64_t>>& pools,
                               std::vector<int32_t> classes, EpisodeShape shape, uint64_t seed)
    : data_(&data), classes_(std::move(classes)), shape_(shape), C_(data.C), H_(data.H), W_(data.W), source_(data.source),
      rng_(seed) {
  if (int64_t(pools.size()) != int64_t(std::max(data.num_classes, 0)))
    fail("episodes over '{}': {} class pools for a set of {} classes", source_, pools.size(), data.num_classes);
  init(&pools);
}

EpisodeSampler::EpisodeSampler(const ImageFolderIndex& tree, ImageLoadOptions options, std::vector<int32_t> classes,
                               EpisodeShape shape, uint64_t seed)
    : owned_(std::make_unique<FolderImages>(tree, options, StreamOptions{.temp_dir = {}, .cache_bytes = 0})),
      data_(owned_.get()), classes_(std::move(classes)), shape_(shape), C_(options.channels), H_(options.height), W_(options.width),
      source_(tree.root), rng_(seed) {
  init();
}

EpisodeSampler::~EpisodeSampler() = default;

void EpisodeSampler::init(const std::vector<std::vector<int64_t>>* pools) {
  data_->check();
  const int32_t num_classes = data_->num_classes;
  const int64_t n = shape_.n_way, k = shape_.k_shot, q = shape_.q_query;
  if (n < 1 || k < 1 || q < 0) fail("episodes over '{}': {}-way {}-shot with {} queries is not an episode", source_, n, k, q);
  if (classes_.empty())
    for (int32_t c = 0; c < num_classes; ++c) classes_.push_back(c);
  std::vector<bool> seen(size_t(num_classes), false);
  for (int32_t c : classes_) {
    if (c < 0 || c >= num_classes) fail("episodes over '{}': class {} is outside [0, {})", source_, c, num_classes);
    if (seen[size_t(c)]) fail("episodes over '{}': class {} is listed twice in the class split", source_, c);
    seen[size_t(c)] = true;
  }
  if (int64_t(classes_.size()) < n)
    fail("episodes over '{}': {}-way episodes need {} classes, the class split has {}", source_, n, n, classes_.size());
  // Every class's images, ascending; only the split's classes are kept.
  if (pools) {
    pools_.resize(size_t(num_classes));
    for (int32_t c : classes_) pools_[size_t(c)] = (*pools)[size_t(c)];
  } else {
    pools_ = data_->indices_by_class();
    for (int32_t c = 0; c < num_classes; ++c)
      if (!seen[size_t(c)]) std::vector<int64_t>().swap(pools_[size_t(c)]);
  }
  for (int32_t c : classes_)
    if (int64_t(pools_[size_t(c)].size()) < k + q)
      fail("episodes over '{}': class {} has {} images, fewer than the {} support + {} query an episode needs", source_, c,
           pools_[size_t(c)].size(), k, q);
  raw_.resize(size_t(C_ * H_ * W_));
  episode_.classes.resize(size_t(n));
  episode_.support.resize(size_t(n * k));
  episode_.query.resize(size_t(n * q));
}

size_t EpisodeSampler::bytes() const {
  size_t b = raw_.capacity() + classes_.capacity() * sizeof(int32_t) + pools_.capacity() * sizeof(pools_[0]);
  for (const auto& p : pools_) b += p.capacity() * sizeof(int64_t);
  return b + (episode_.support.capacity() + episode_.query.capacity()) * sizeof(int64_t);
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
    data_->read_image(items[size_t(r)], static_cast<float*>(x.data()) + r * elems, raw_.data());
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
