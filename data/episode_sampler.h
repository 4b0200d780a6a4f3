// EpisodeSampler: N-way K-shot episodes for few-shot meta-learning. Each episode picks
// N distinct classes from a class split, then K support and Q query images per class,
// all distinct, and relabels the chosen classes 0..N-1 (in the order drawn).
//
//   ClassSplit cs = fashion_mnist_class_split();
//   EpisodeSampler episodes(train, cs.meta_train, {.n_way = 5, .k_shot = 1, .q_query = 15}, seed);
//   // support_x [N*K, C, H, W], support_y [N*K], query_x [N*Q, C, H, W], query_y [N*Q]
//   const Episode& e = episodes.next(support_x, support_y, query_x, query_y);
//
// Buffers are class-major: rows k*... of class j are rows j*K .. j*K+K-1 of support and
// j*Q .. j*Q+Q-1 of query, with label j. Images come from any ImageSet: an in-memory
// Dataset, or a streamed set (data/streaming.h), e.g. an image tree decoded on demand
// (big Omniglot / miniImageNet trees need not fit in memory); they are converted to float
// and normalized (ImageSet::read_image) as they are copied. Drawing an episode allocates
// nothing; the sequence of episodes is a function of the seed.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "data/image_folder.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace onnas::data {

struct EpisodeShape {
  int64_t n_way = 5;
  int64_t k_shot = 1;
  int64_t q_query = 15;
  // false: label j is the j-th class drawn (a random order, as few-shot tasks are);
  // true: the drawn classes are labelled in increasing class id, so a class keeps its
  // label across the tasks of a split no larger than n_way.
  bool sorted_labels = false;
};

struct Episode {
  std::vector<int32_t> classes;  // original class ids; episode label j means classes[j]
  // Items per slot, class-major: image indices in the ImageSet (for an image tree, the
  // tree's images numbered class by class, files in their sorted order).
  std::vector<int64_t> support;  // N*K
  std::vector<int64_t> query;    // N*Q
};

class EpisodeSampler {
 public:
  // Over an ImageSet (which must outlive the sampler), restricted to `classes` (all
  // classes when empty).
  EpisodeSampler(const ImageSet& data, std::vector<int32_t> classes, EpisodeShape shape, uint64_t seed);
  // As above, with the set's images by class already listed (ImageSet::indices_by_class,
  // e.g. once per split for all its tasks): the sampler copies only the pools of
  // `classes`, exactly sized, instead of reading every label of the set again. The same
  // episodes as the constructor above.
  EpisodeSampler(const ImageSet& data, const std::vector<std::vector<int64_t>>& pools, std::vector<int32_t> classes,
                 EpisodeShape shape, uint64_t seed);
  // Over an image tree (which must outlive the sampler); images are decoded with
  // `options` when an episode is filled (a FolderImages set without a cache).
  EpisodeSampler(const ImageFolderIndex& tree, ImageLoadOptions options, std::vector<int32_t> classes, EpisodeShape shape,
                 uint64_t seed);
  ~EpisodeSampler();

  const EpisodeShape& shape() const { return shape_; }
  Shape image_shape() const { return Shape{C_, H_, W_}; }

  // Draws the next episode (indices only).
  const Episode& next();
  // Draws the next episode and fills the buffers (shapes as in the header comment).
  const Episode& next(Tensor support_x, Tensor support_y, Tensor query_x, Tensor query_y);

  // Bytes the sampler holds: its per-class index pools (they scale with the images of
  // the set) and one image of scratch; not the ImageSet's own (ImageSet::bytes).
  size_t bytes() const;

 private:
  void init(const std::vector<std::vector<int64_t>>* pools = nullptr);
  void fill(const std::vector<int64_t>& items, int64_t per_class, Tensor x, Tensor y, const char* what);

  std::unique_ptr<ImageSet> owned_;  // the tree's set, for the tree constructor
  const ImageSet* data_ = nullptr;
  std::vector<uint8_t> raw_;                 // one image's bytes, for sets that read files
  std::vector<int32_t> classes_;             // the class split, drawn from in place
  std::vector<std::vector<int64_t>> pools_;  // per class id: its items, drawn from in place
  EpisodeShape shape_;
  int64_t C_ = 0, H_ = 0, W_ = 0;
  std::string source_;
  Rng rng_;
  Episode episode_;
};

}  // namespace onnas::data
