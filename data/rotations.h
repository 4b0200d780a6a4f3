// Rotated classes, the Omniglot protocol of Vinyals et al. (2016) and the work that
// followed (ProtoNets, MAML): each character turned by 90, 180 and 270 degrees is a
// class of its own, so 1,623 characters give 6,492 classes.
//
//   FolderImages tree(index, {.channels = 1, .height = 28, .width = 28});
//   RotatedClasses rotated(tree, RotatedClasses::all_turns(tree.num_classes));  // class 4c + r
//   EpisodeSampler episodes(rotated, {}, {.n_way = 20, .k_shot = 1, .q_query = 5}, seed);
//
// A view over another ImageSet (which must outlive it): images are turned when read, so
// it holds no pixels, only each listed class's image indices.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "data/dataset.h"

namespace onnas::data {

class RotatedClasses final : public ImageSet {
 public:
  // Class k of this set is classes[k] = (class of `base`, quarter turns 0..3
  // counter-clockwise, as numpy.rot90). The images must be square.
  RotatedClasses(const ImageSet& base, std::vector<std::pair<int32_t, int>> classes);
  // Every class of a set of `num_classes` in all four turns: class 4c + r is class c
  // turned r times.
  static std::vector<std::pair<int32_t, int>> all_turns(int32_t num_classes);

  int32_t label(int64_t i) const override;
  const uint8_t* raw_image(int64_t i, uint8_t* scratch) const override;
  // What the process holds for this set: the view and the set it views (whose images
  // and caches are read through it). view_bytes(): the view alone.
  size_t bytes() const override;
  size_t view_bytes() const;
  std::string describe() const override;
  void read_labels(int64_t first, std::span<int32_t> out) const override;

  const ImageSet& base() const { return base_; }
  const std::pair<int32_t, int>& rotated_class(int32_t k) const { return classes_[size_t(k)]; }

 private:
  const ImageSet& base_;
  std::vector<std::pair<int32_t, int>> classes_;
  std::vector<std::vector<int64_t>> base_items_;  // per base class, its images (only the classes used)
  std::vector<int64_t> class_start_;              // per class of this set, its first image; then N
};

// Turns a square C x S x S image by `quarter_turns` * 90 degrees counter-clockwise, in place.
void rotate_quarter_turns(uint8_t* image, int64_t C, int64_t S, int quarter_turns);

}  // namespace onnas::data
